"""stylesearch against a real digiKam, headless (xvfb-run), with its settings, database and
collection in a temporary folder:

1. digiKam starts once and creates digikam4.db. Adding a collection is a GUI step, so the
   test adds the AlbumRoots row digiKam writes itself when its volume finder (Solid) finds
   no volume, as in containers (`volumeid:?path=...`, specificPath "/"), with digiKam closed.
2. digiKam starts again and scans the collection.
3. `stylesearch digikam sync --index` reads that database and indexes every image it shows.
4. With digiKam closed, `digikam similar --tag` writes XMP sidecar tags for the results and
   `digikam tag --write-db` assigns one tag directly in the database.
5. digiKam starts a third time (sidecar reading and "rescan file if modified" on, as the
   README asks): its startup scan must read the sidecar tags into its tables, and keep the
   tag written into the database.

Needs digikam and xvfb-run (`apt install digikam xvfb`; plugins/digikam/integration.sh
installs them and runs this).
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from stylesearch.cli import cli, plugins
from stylesearch.integrations import digikam_db
from stylesearch.integrations.digikam import digikam, plugins_digikam

from samples import drawing, save

pytestmark = pytest.mark.skipif(
    not all(map(shutil.which, ("digikam", "xvfb-run"))),
    reason="digiKam or xvfb-run is not installed (apt install digikam xvfb, or run plugins/digikam/integration.sh)")

START_TIMEOUT_S = 120
DIGIKAMRC = """[General Settings]
Version=7.9.0

[Album Settings]
Scan At Start=true

[Metadata Settings]
Use XMP Sidecar For Reading=true
Rescan File If Modified=true
"""


def invoke(*args):
    cli.add_command(digikam)
    plugins.add_command(plugins_digikam)
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def query(db: Path, sql: str, *params) -> list[tuple]:
    """Rows from digiKam's database, read-only; none while the file or table does not exist yet."""
    if not db.exists():
        return []
    with closing(sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, timeout=10)) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []


def tags_of(db: Path) -> set[tuple[str, str]]:
    """(image name, full tag path) for every tag digiKam assigned, internal ones left out."""
    names = {tid: (pid, name) for tid, pid, name in query(db, "SELECT id, pid, name FROM Tags")}

    def path(tag_id: int) -> str:
        pid, name = names[tag_id]
        return f"{path(pid)}/{name}" if pid else name

    rows = query(db, "SELECT i.name, it.tagid FROM ImageTags it JOIN Images i ON i.id = it.imageid")
    return {(image, path(tag)) for image, tag in rows if not path(tag).startswith("_Digikam_Internal_Tags_")}


def run_digikam(env: dict, db_dir: Path, log: Path, until, what: str) -> float:
    """Start digiKam under xvfb-run, wait until `until()` holds, then stop it; seconds taken."""
    started = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(["xvfb-run", "-a", "digikam", "--database-directory", str(db_dir)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not until():
            if proc.poll() is not None:
                pytest.fail(f"digiKam exited ({proc.returncode}) before {what}; see {log}")
            if time.monotonic() - started > START_TIMEOUT_S:
                pytest.fail(f"digiKam did not {what} within {START_TIMEOUT_S} s; see {log}")
            time.sleep(0.5)
        time.sleep(2)  # let its scan finish its transaction
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    while digikam_db.digikam_running():
        time.sleep(0.2)  # all gone, so the next start (or the direct database write) finds it closed
    return time.monotonic() - started


def test_digikam_collection_sync_and_tags_back(tmp_path, tiny_model, monkeypatch):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "digikamrc").write_text(DIGIKAMRC)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_RUNTIME_DIR": str(runtime), "QTWEBENGINE_DISABLE_SANDBOX": "1", "QT_QPA_PLATFORM": "xcb"}
    for key, value in {"STYLESEARCH_LIBRARY": tmp_path / "library", "STYLESEARCH_MODEL": tiny_model,
                       "STYLESEARCH_CONFIG": tmp_path / "none.toml", "STYLESEARCH_SOCKET": runtime / "ss.sock",
                       "XDG_CACHE_HOME": home / ".cache"}.items():
        monkeypatch.setenv(key, str(value))
    collection = tmp_path / "My Comics"
    names = [("", f"page {i}.png") for i in range(4)] + [("Inks 2024", f"ink {i}.jpg") for i in range(3)]
    for i, (folder, name) in enumerate(names):
        save(drawing(seed=i, style=i % 3), collection / folder / name)
    db_dir, log = tmp_path / "db", tmp_path / "digikam.log"
    db_dir.mkdir()
    db = db_dir / "digikam4.db"
    timings = {}

    timings["create database"] = run_digikam(env, db_dir, log, lambda: query(db, "SELECT value FROM Settings WHERE keyword='DBVersion'"),
                                             "create its database")
    with sqlite3.connect(db) as conn:  # what CollectionManager::addLocation writes when Solid finds no volume
        conn.execute("INSERT INTO AlbumRoots (label, status, type, identifier, specificPath) VALUES (?, 0, 1, ?, '/')",
                     ("My Comics", f"volumeid:?path={quote(str(collection))}"))
    timings["scan collection"] = run_digikam(env, db_dir, log, lambda: len(query(db, "SELECT id FROM Images")) == len(names),
                                             "scan the collection")

    before = db.read_bytes()
    report = json.loads(invoke("digikam", "sync", "--db", db, "--index", "--json"))
    assert (report["images"], report["indexed"], report["not_indexed"]) == (len(names), len(names), [])
    assert db.read_bytes() == before  # read-only
    query_image = collection / "page 0.png"
    invoke("digikam", "similar", query_image, "-k", "3", "--tag", "--no-open")
    results = {p.name.removesuffix(".xmp") for p in collection.rglob("*.xmp")}
    assert len(results) == 3 and "page 0.png" not in results
    invoke("digikam", "tag", collection / "Inks 2024" / "ink 0.jpg", "-t", "stylesearch/direct-write", "--write-db", "--db", db)
    assert ("ink 0.jpg", "stylesearch/direct-write") in tags_of(db)

    expected = {(name, "stylesearch/similar-to/page 0.png") for name in results} | {("ink 0.jpg", "stylesearch/direct-write")}
    timings["rescan sidecars"] = run_digikam(env, db_dir, log, lambda: expected <= tags_of(db), "read the sidecar tags")
    assert tags_of(db) == expected
    version = subprocess.run(["digikam", "--version"], env={**env, "QT_QPA_PLATFORM": "offscreen"},
                             capture_output=True, text=True, timeout=60).stdout.strip()
    print(f"\n{version}: "
          f"{len(names)} images scanned, synced and indexed; sidecar tags of {len(results)} results and one "
          f"direct database tag in digiKam's tables after its rescan; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), file=sys.stderr)
