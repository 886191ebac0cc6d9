"""The daemon with real watchdog observers on temporary folders, and its socket."""

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from stylesearch.daemon import client
from stylesearch.daemon.service import Service
from stylesearch.daemon.watcher import coalesce, interesting
from stylesearch.errors import StyleSearchError
from stylesearch.library.folder import Library
from stylesearch.library.indexer import index_paths
from stylesearch.search.similar import similar

from conftest import SETTLE, wait_for
from samples import drawing, save


def paths_in(library, status="ok"):
    rows = library.catalog.db.execute("SELECT path FROM files WHERE status=?", (status,))
    return {os.path.basename(os.fsdecode(p)) for (p,) in rows}


def test_new_files_become_searchable(running):
    service, root, library = running
    save(drawing(seed=1), root / "a.png")
    save(drawing(seed=2), root / "sub" / "b.png")
    assert wait_for(lambda: paths_in(library) == {"a.png", "b.png"})
    hits = client.request("similar", {"query": str(root / "a.png"), "k": 5})
    assert [h["path"] for h in hits] == [str(root / "sub" / "b.png")]


def test_slowly_written_file_is_indexed_once_when_complete(running):
    service, root, library = running
    data = (root.parent / "src.png")
    save(drawing(seed=3, size=(400, 400)), data)
    payload = data.read_bytes()
    target = root / "growing.png"
    with open(target, "wb") as fh:  # written in pieces over ~2 s
        for i in range(8):
            fh.write(payload[i * len(payload) // 8:(i + 1) * len(payload) // 8])
            fh.flush()
            time.sleep(0.25)
    assert wait_for(lambda: "growing.png" in paths_in(library))
    time.sleep(SETTLE * 3)
    row = library.catalog.row(os.fsencode(target))
    assert row.status == "ok" and row.size == len(payload)
    assert paths_in(library, "failed") == set()  # never embedded half-written


def test_temporary_download_names_wait_for_the_rename(running):
    service, root, library = running
    save(drawing(seed=4), root / "cover.png.part", "PNG")
    time.sleep(SETTLE * 4)
    assert paths_in(library) == set()
    os.rename(root / "cover.png.part", root / "cover.png")
    assert wait_for(lambda: paths_in(library) == {"cover.png"})


def test_burst_is_batched(running, monkeypatch):
    service, root, library = running
    batches = []
    real = service._index_batch
    service.watcher.on_batch = lambda paths: (batches.append(len(paths)), real(paths))
    staging = root.parent / "staging"
    for i in range(200):
        save(drawing(seed=i, size=(40, 40)), staging / f"p{i:03d}.png")
    for path in sorted(staging.iterdir()):
        shutil.copy(path, root / path.name)
    assert wait_for(lambda: len(paths_in(library)) == 200, timeout=120)
    assert len(batches) < 20 and sum(batches) >= 200  # batched, not one model call per file


def test_rename_move_and_delete(running):
    service, root, library = running
    save(drawing(seed=5), root / "x.png")
    save(drawing(seed=6), root / "folder" / "y.png")
    save(drawing(seed=7), root / "folder" / "z.png")
    assert wait_for(lambda: len(paths_in(library)) == 3)
    vector = library.catalog.vector(library.catalog.row(os.fsencode(root / "x.png")).id)
    os.rename(root / "x.png", root / "renamed.png")
    (root / "other").mkdir()
    os.rename(root / "folder" / "y.png", root / "other" / "y.png")
    assert wait_for(lambda: paths_in(library) == {"renamed.png", "y.png", "z.png"})
    assert np.array_equal(library.catalog.vector(library.catalog.row(os.fsencode(root / "renamed.png")).id), vector)
    assert library.catalog.row(os.fsencode(root / "other" / "y.png")) is not None
    (root / "renamed.png").unlink()
    shutil.rmtree(root / "folder")
    assert wait_for(lambda: paths_in(library) == {"y.png"})


def test_unmounted_root_goes_offline_not_deleted(running, tmp_path):
    service, root, library = running
    save(drawing(seed=8), root / "kept.png")
    assert wait_for(lambda: paths_in(library) == {"kept.png"})
    os.rename(root, tmp_path / "elsewhere")
    client.request("rescan")
    assert wait_for(lambda: paths_in(library, "offline") == {"kept.png"})
    assert library.catalog.counts()["ok"] == 0


def test_second_writer_is_refused_while_the_daemon_runs(running, embedder, tmp_path):
    service, root, library = running
    with Library(library.folder) as other:
        with pytest.raises(StyleSearchError, match="another stylesearch process"):
            index_paths(other, [root], embedder)


def test_socket_is_private_and_queries_match_in_process(running, embedder, socket_env):
    service, root, library = running
    assert stat.S_IMODE(os.stat(socket_env).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(socket_env.parent).st_mode) & 0o077 == 0
    for i in range(6):
        save(drawing(seed=20 + i, style=i % 3), root / f"s{i}.png")
    assert wait_for(lambda: len(paths_in(library)) == 6)
    through_socket = client.request("similar", {"query": str(root / "s0.png"), "k": 4})
    with Library(library.folder) as reader:
        in_process = similar(reader, root / "s0.png", k=4, make_embedder=lambda _: embedder)
    assert through_socket == [h.to_dict() for h in in_process]
    morph = client.request("morph", {"a": str(root / "s0.png"), "b": str(root / "s5.png"), "k": 5})
    assert morph["steps"][0]["path"] == str(root / "s0.png") and morph["steps"][-1]["path"] == str(root / "s5.png")
    status = client.request("status")
    assert status["pid"] == os.getpid() and status["roots"] == [str(root)] and status["counts"]["ok"] == 6
    with pytest.raises(client.DaemonUnavailable, match="serves"):
        client.request("status", library=str(root))  # another library: the caller works in-process
    with pytest.raises(client.DaemonError, match="unknown operation"):
        client.request("frobnicate")


def test_watcher_filters_and_coalescing(tmp_path):
    assert interesting("/a/b/cover.jpg", False) and interesting("/a/b", True)
    assert not interesting("/a/.cache/cover.jpg", False)
    assert not interesting("/a/cover.jpg.crdownload", False) and not interesting("/a/notes.txt", False)
    (tmp_path / "d").mkdir()
    assert coalesce([str(tmp_path / "d" / "x.png"), str(tmp_path / "d"), str(tmp_path / "y.png")]) == sorted(
        [str(tmp_path / "d"), str(tmp_path / "y.png")])


def test_restart_reconciles_and_sigterm_keeps_everything(tmp_path, tiny_model, socket_env):
    """A real background process: changes made while it was stopped are picked up; SIGTERM in
    the middle of a batch leaves a sound catalog and a saved index, and nothing is lost."""
    root, library = tmp_path / "root", tmp_path / "lib"
    for i in range(40):
        save(drawing(seed=i, size=(300, 300)), root / f"f{i:02d}.png")
    env = {**os.environ, "STYLESEARCH_MODEL": str(tiny_model), "STYLESEARCH_LIBRARY": str(library),
           "STYLESEARCH_SOCKET": str(socket_env)}
    command = [sys.executable, "-m", "stylesearch", "daemon", "run", "--settle", "0.3"]
    errors = open(tmp_path / "daemon.err", "w")  # noqa: SIM115 - closed at the end
    proc = subprocess.Popen(command + [str(root)], env=env, stderr=errors)
    try:
        assert wait_for(lambda: socket_env.exists(), timeout=60)
        assert wait_for(lambda: client.request("status")["counts"]["ok"] > 0, timeout=60)
        proc.send_signal(signal.SIGTERM)  # most likely mid-batch
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill() if proc.poll() is None else None
    db = sqlite3.connect(library / "catalog.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert json.loads((library / "index.hnsw.json").read_text())["generation"] == int(
        db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
    db.close()
    (root / "f00.png").unlink()  # changes while nobody watches
    save(drawing(seed=99), root / "new.png")
    proc = subprocess.Popen(command, env=env, stderr=errors)  # roots remembered
    try:
        assert wait_for(lambda: socket_env.exists(), timeout=60)
        assert wait_for(lambda: client.request("status")["counts"]["ok"] == 40, timeout=120)
        client.request("stop")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill() if proc.poll() is None else None
    errors.close()
    with Library(library) as lib:
        names = paths_in(lib)
        assert "f00.png" not in names and "new.png" in names and len(names) == 40
        paths = [p for (p,) in lib.catalog.db.execute("SELECT path FROM files")]
        assert len(paths) == len(set(paths))  # every image indexed exactly once


def test_queries_during_indexing_use_the_live_index(running, monkeypatch):
    """A query that lands between a commit and the index update must not rebuild the index."""
    service, root, library = running
    save(drawing(seed=1), root / "a.png")
    assert wait_for(lambda: paths_in(library) == {"a.png"})
    live = library.ann()
    with library.catalog.transaction():
        library.catalog.bump_generation()  # a commit whose index update has not happened yet
    from stylesearch.library import folder

    monkeypatch.setattr(folder.AnnIndex, "build", lambda *a: pytest.fail("rebuilt the index during a query"))
    assert library.ann() is live
    assert client.request("similar", {"query": str(root / "a.png"), "k": 1, "include_self": True})[0]["distance"] == 0


def test_root_inside_a_hidden_folder_is_followed(tmp_path, embedder, socket_env):
    root = tmp_path / ".local" / "share" / "Comics"  # hidden above the root, not below it
    root.mkdir(parents=True)
    library = Library(tmp_path / "lib", create=True)
    service = Service(library, embedder, settle_s=SETTLE)
    thread = threading.Thread(target=service.serve, args=([str(root)],), daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: socket_env.exists() and service.watcher.watches)
        save(drawing(seed=1), root / "a.png")
        save(drawing(seed=2), root / ".cache" / "thumb.png")  # hidden below the root: skipped
        assert wait_for(lambda: paths_in(library) == {"a.png"})
    finally:
        service.shutdown()
        thread.join(timeout=30)
        library.close()


def test_root_moved_away_and_back_is_noticed_without_a_rescan(running, tmp_path):
    service, root, library = running
    save(drawing(seed=8), root / "kept.png")
    assert wait_for(lambda: paths_in(library) == {"kept.png"})
    os.rename(root, tmp_path / "elsewhere")
    assert wait_for(lambda: paths_in(library, "offline") == {"kept.png"})
    os.rename(tmp_path / "elsewhere", root)
    assert wait_for(lambda: paths_in(library) == {"kept.png"})
    save(drawing(seed=9), root / "after.png")  # watched again after coming back
    assert wait_for(lambda: paths_in(library) == {"kept.png", "after.png"})


def test_a_daemon_on_another_socket_logs_to_its_own_file(monkeypatch, tmp_path):
    from stylesearch.daemon.process import log_file

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("STYLESEARCH_SOCKET", raising=False)
    logs = {log_file()}
    for library in ("comics", "artbooks"):  # sockets of one name in two folders: two logs
        monkeypatch.setenv("STYLESEARCH_SOCKET", str(tmp_path / library / "daemon.sock"))
        logs.add(log_file())
    assert len(logs) == 3 and tmp_path / "state" / "stylesearch" / "log" / "daemon.log" in logs
