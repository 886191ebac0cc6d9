"""A library on a disk that fills up or turns read-only: a clear one-line error and a
non-zero exit, no corruption, nothing committed lost, and recovery when the disk is back.

Uses a small tmpfs mounted for the test (root only; skipped otherwise).
"""

import os
import sqlite3
import subprocess

import pytest
from click.testing import CliRunner

from stylesearch.cli import cli
from stylesearch.library.folder import Library

from samples import drawing, save


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs: room for a library of a few hundred files, easy to fill."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def library_on(small_disk, tmp_path, tiny_model, monkeypatch):
    library = small_disk / "library"
    monkeypatch.setenv("STYLESEARCH_LIBRARY", str(library))
    monkeypatch.setenv("STYLESEARCH_MODEL", str(tiny_model))
    monkeypatch.setenv("STYLESEARCH_CONFIG", os.devnull)
    monkeypatch.setenv("STYLESEARCH_NO_DAEMON", "1")
    return library


def stylesearch(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def add_images(folder, first: int, count: int) -> None:
    for i in range(first, first + count):
        save(drawing(seed=i, size=(48, 64), style=i % 3), folder / f"img{i:04d}.png")


def rows(library) -> dict:
    con = sqlite3.connect(library / "catalog.sqlite3")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {path: (status, vector) for path, status, vector in con.execute("SELECT path, status, vector FROM files")}
    finally:
        con.close()


def assert_one_line_error(result, *words) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    assert any(w in lines[0].lower() for w in words), lines[0]


def index_agrees(library) -> None:
    with Library(library) as lib:
        ids, vectors = lib.catalog.searchable(lib.model_id)
        ann = lib.ann()
        assert ann.live == len(ids)
        found, distances = ann.query(vectors[0], 1)
        assert distances[0] < 1e-4


@pytest.mark.parametrize("free_kib", [0, 256], ids=["full-at-start", "fills-mid-run"])
def test_disk_full_is_a_clear_error_and_recovers(library_on, small_disk, tmp_path, free_kib):
    images = tmp_path / "images"
    add_images(images, 0, 20)
    assert stylesearch("index", images).exit_code == 0
    committed = rows(library_on)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        os.posix_fallocate(fd, 0, free - free_kib * 1024)
    finally:
        os.close(fd)
    add_images(images, 20, 300)

    assert_one_line_error(stylesearch("index", images), "disk is full", "no space")

    filler.unlink()  # the space comes back
    after = rows(library_on)
    assert all(after.get(path) == row for path, row in committed.items())  # nothing committed lost or changed
    assert stylesearch("index", images).exit_code == 0
    final = rows(library_on)
    assert len(final) == 320 and {status for status, _ in final.values()} == {"ok"}
    index_agrees(library_on)


def test_read_only_library_refuses_writes_clearly_and_still_answers(library_on, small_disk, tmp_path):
    images = tmp_path / "images"
    add_images(images, 0, 20)
    assert stylesearch("index", images).exit_code == 0
    query = images / "img0003.png"
    before = stylesearch("similar", query, "--json")
    committed = rows(library_on)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    add_images(images, 20, 5)

    assert_one_line_error(stylesearch("index", images), "read-only")
    assert_one_line_error(stylesearch("forget", query), "read-only")
    assert stylesearch("similar", query, "--json").output == before.output  # searching still works
    assert stylesearch("morph", query, images / "img0007.png", "--k", "7", "--json").exit_code == 0  # its graph is not cached
    assert stylesearch("status").exit_code == 0

    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert rows(library_on) == committed
    assert stylesearch("index", images).exit_code == 0
    assert len(rows(library_on)) == 25
    index_agrees(library_on)
