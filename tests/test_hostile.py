"""The hostile-input corpus through the real CLI, and a fuzz target for the loaders.

Indexing the corpus must record a one-line reason for every bad file, index every good one,
stay within a memory bound, and write nothing outside the library folder.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from stylesearch import imaging
from stylesearch.cli import cli
from stylesearch.errors import ImageLoadError
from stylesearch.library.folder import Library

from hostile import CLI_WITH_VANISHING_FILE, VANISHING, loader_seeds, make_corpus

# What the hostile corpus may add to the peak RSS of indexing a few good files (the same
# CLI, model and 2 decode threads). Bombs are refused from their headers, oversized files
# from their size, archive members before they are decompressed; the largest legal input
# (89.5 MP, 256 MiB file) would cost a decode thread about 1 GB.
RSS_EXTRA_BOUND_MIB = 64
LIBRARY_FILES = {"catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm", "index.hnsw", "index.hnsw.json", "lock"}


def snapshot(root: Path, skip: Path) -> dict[str, tuple]:
    """Every entry below `root` (but `skip`) with its type, size and mtime, links unfollowed."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        for name in dirs + files:
            info = os.lstat(os.path.join(folder, name))
            found[os.path.relpath(os.path.join(folder, name), root)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def unprivileged() -> list[str]:
    """A command prefix that makes a chmod-000 file unreadable: as root, drop the capabilities
    that bypass file permissions (root would read it anyway)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a chmod 000 file would be readable")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def run_measured(command: list[str], env: dict, cwd: Path) -> tuple[int, str, str, float]:
    """(exit status, stdout, stderr, peak RSS in MiB) of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"), usage.ru_maxrss / 1024


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_hostile_corpus_through_the_cli(tmp_path, tiny_model, monkeypatch):
    tree = tmp_path / "tree"  # everything the run could touch, apart from the library
    corpus, escape, library, cwd = tree / "corpus", tree / "escape", tree / "library", tree / "cwd" / "a" / "b" / "c"
    for folder in (escape, cwd, tree / "home", tree / "tmp", tree / "run"):
        folder.mkdir(parents=True)
    expect = make_corpus(corpus, escape)
    settings = {"STYLESEARCH_LIBRARY": str(library), "STYLESEARCH_MODEL": str(tiny_model), "STYLESEARCH_NO_DAEMON": "1",
                "STYLESEARCH_CONFIG": os.devnull, "STYLESEARCH_SOCKET": str(tree / "run" / "sock"),
                "HOME": str(tree / "home"), "TMPDIR": str(tree / "tmp"), "XDG_RUNTIME_DIR": str(tree / "run")}
    command = unprivileged() + [sys.executable, "-c", CLI_WITH_VANISHING_FILE, "index", "--json", "--workers", "2"]
    baseline = {**os.environ, **settings, "STYLESEARCH_LIBRARY": str(tmp_path / "baseline")}
    code, _, stderr, baseline_mib = run_measured(command + [str(corpus / "good")], baseline, cwd)
    assert code == 0, stderr
    before = snapshot(tree, skip=library)

    code, stdout, stderr, peak_mib = run_measured(command + [str(corpus)], {**os.environ, **settings}, cwd)

    assert code == 0, stderr
    summary = json.loads(stdout)
    print(f"{len(expect)} hostile inputs; peak RSS {peak_mib:.0f} MiB (good files alone: {baseline_mib:.0f} MiB); "
          f"summary {({k: v for k, v in summary.items() if k != 'errors'})}")
    assert peak_mib - baseline_mib < RSS_EXTRA_BOUND_MIB
    changed = {"corpus", f"corpus/{VANISHING}"}  # the one change the run makes: the vanished file, by the harness
    after = snapshot(tree, skip=library)
    assert {k: v for k, v in after.items() if k not in changed} == {k: v for k, v in before.items() if k not in changed}
    assert f"corpus/{VANISHING}" not in after  # nothing else extracted, created or changed outside the library
    assert {p.name for p in library.iterdir()} <= LIBRARY_FILES

    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    report = json.loads(CliRunner().invoke(cli, ["status", "--failed", "--json"], catch_exceptions=False).output)
    failed = {os.path.relpath(item["path"], corpus): item["error"] for item in report["failed"]}
    with Library(library) as lib:
        ok = {os.path.relpath(os.fsdecode(p), corpus) for p in lib.catalog.ok_paths_under(os.fsencode(corpus)).values()}
    assert ok.isdisjoint(failed) and set(ok) | set(failed) <= set(expect)
    for name, expectation in expect.items():
        if expectation == "ok":
            assert name in ok, (name, failed.get(name))
        elif expectation == "absent":
            assert name not in ok and name not in failed, name
        elif expectation == "any":
            assert name in ok or name in failed, name
        else:
            reason = expectation.removeprefix("failed:")
            assert name in failed and reason in failed[name], (name, failed.get(name, "indexed"))
    assert all(error and "\n" not in error for error in failed.values())
    assert summary["added"] == len(ok) and summary["failed"] == len(failed)


# --- fuzzing the loaders -------------------------------------------------------------------

SEEDS = loader_seeds()
EDITS = st.lists(st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "repeat"]), st.integers(0, 1 << 16), st.integers(0, 255)),
                 min_size=1, max_size=6)


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        at = where % (len(out) + 1)
        if kind == "flip" and at < len(out):
            out[at] ^= 1 << (value % 8)
        elif kind == "set" and at < len(out):
            out[at] = value
        elif kind == "cut":
            del out[at:]
        elif kind == "insert":
            out[at:at] = bytes([value]) * (1 + value % 7)
        elif kind == "repeat":
            out[at:at] = out[at : at + value]
    return bytes(out)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about each damaged TIFF tag
@settings(max_examples=1000, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(ext=st.sampled_from(sorted(SEEDS)), edits=EDITS)
def test_fuzz_loaders_raise_only_one_line_load_errors(ext, edits):
    """Any mutation of a valid file either loads as RGB or fails with one ImageLoadError line;
    any other exception (or a hang, caught by the suite's timeout) is a bug."""
    data = mutate(SEEDS[ext], edits)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{ext}"
        path.write_bytes(data)
        try:
            img = imaging.load_image(path, target=32)
        except ImageLoadError as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert isinstance(img, Image.Image) and img.mode == "RGB" and img.width * img.height > 0


def test_fuzz_seeds_are_valid():
    """The fuzz target starts from files that load, so mutations explore past the headers."""
    with tempfile.TemporaryDirectory() as folder:
        for ext, data in SEEDS.items():
            (Path(folder) / f"seed{ext}").write_bytes(data)
            assert imaging.load_image(Path(folder) / f"seed{ext}").mode == "RGB", ext
