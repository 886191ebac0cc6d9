"""stylesearch against a real digiKam, headless (xvfb-run), with its settings, database and
collection in a temporary folder:

1. digiKam starts once and creates digikam4.db. Adding a collection is a GUI step, so the
   test adds the AlbumRoots row digiKam writes itself when its volume finder (Solid) finds
   no volume, as in containers (`volumeid:?path=...`, specificPath "/"), with digiKam closed.
2. digiKam starts again and scans the collection.
3. `stylesearch digikam sync --index` reads that database and indexes every image it shows.
4. The Open With entries installed as `stylesearch plugins digikam --install --tag-results`
   would; KDE's service cache (what digiKam's
   Open With menu lists) must offer both entries for PNG images. "Find similar art style" runs
   as digiKam runs it (its own splitting of the Exec line), "Style morph" through GLib's
   `gio launch`; both must open their gallery (a stand-in xdg-open records it) and tag the
   results in XMP sidecars. With digiKam closed, `digikam tag --write-db` assigns one tag
   directly in the database.
5. digiKam starts a third time (sidecar reading and "rescan file if modified" on, as the
   README asks): its startup scan must read the sidecar tags into its tables, and keep the
   tag written into the database.

Needs digikam, xvfb-run and gio (`apt install digikam xvfb libglib2.0-bin`; ktraderclient5
from kde-cli-tools is used when present); plugins/digikam/integration.sh installs them and
runs this.
"""

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from test_digikam import digikam_split

from stylesearch.cli import cli
from stylesearch.integrations import digikam_db
from stylesearch.integrations.digikam import install

from samples import drawing, save

pytestmark = pytest.mark.skipif(
    not all(map(shutil.which, ("digikam", "xvfb-run", "gio"))),
    reason="digiKam, xvfb-run or gio is not installed (apt install digikam xvfb libglib2.0-bin, or run "
           "plugins/digikam/integration.sh)")

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


def sidecar_tags(collection: Path) -> set[tuple[str, str]]:
    """(image name, tag) for every digiKam:TagsList entry in the collection's sidecars."""
    found = set()
    for sidecar in collection.rglob("*.xmp"):
        for li in ET.parse(sidecar).getroot().iterfind(".//{http://www.digikam.org/ns/1.0/}TagsList/*/"
                                                         "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li"):
            found.add((sidecar.name.removesuffix(".xmp"), li.text))
    return found


def wait_for_lines(path: Path, count: int, timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.2)
    pytest.fail(f"{path} did not get {count} line(s) within {timeout} s")


def test_digikam_collection_sync_open_with_and_tags_back(tmp_path, tiny_model, monkeypatch):
    home, runtime = tmp_path / "home", tmp_path / "run"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "digikamrc").write_text(DIGIKAMRC)
    runtime.mkdir(mode=0o700)
    for key, value in {"HOME": home, "XDG_CONFIG_HOME": home / ".config", "XDG_DATA_HOME": home / ".local/share",
                       "XDG_CACHE_HOME": home / ".cache", "XDG_RUNTIME_DIR": runtime, "QTWEBENGINE_DISABLE_SANDBOX": "1",
                       "QT_QPA_PLATFORM": "xcb", "STYLESEARCH_CONFIG": os.devnull,
                       "STYLESEARCH_SOCKET": runtime / "ss.sock"}.items():
        monkeypatch.setenv(key, str(value))
    env = dict(os.environ)  # what digiKam runs with, and what its Open With children inherit
    library = tmp_path / "library"
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
    options = ["--library", library, "--model", tiny_model]
    report = json.loads(invoke(*options, "digikam", "sync", "--db", db, "--index", "--json"))
    assert (report["images"], report["indexed"], report["not_indexed"]) == (len(names), len(names), [])
    assert db.read_bytes() == before  # read-only

    # Open With: the entries as KDE's service cache lists them for digiKam, run as digiKam runs
    # them (its own Exec splitting) and as GLib does (gio launch); xdg-open records what it opens.
    install([sys.executable, "-m", "stylesearch", *map(str, options)], Path(env["XDG_DATA_HOME"]), tag_results=True)
    opened, fake_bin = tmp_path / "opened.txt", tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "xdg-open").write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> {shlex.quote(str(opened))}\n')
    (fake_bin / "xdg-open").chmod(0o755)
    launch_env = {**env, "PATH": f"{fake_bin}{os.pathsep}{env['PATH']}"}
    entries = Path(env["XDG_DATA_HOME"]) / "applications"
    exec_line = next(line[5:] for line in (entries / "stylesearch-similar.desktop").read_text().splitlines()
                     if line.startswith("Exec="))
    if shutil.which("ktraderclient5"):
        listed = subprocess.run(["ktraderclient5", "--mimetype", "image/png", "--servicetype", "Application"],
                                env=env, capture_output=True, text=True, timeout=120).stdout
        assert "Name : 'Find similar art style'" in listed and "Name : 'Style morph'" in listed
        exec_line = re.search(r"Exec : '(.* digikam similar .*)'", listed).group(1)
    query_image = collection / "page 0.png"
    started = time.monotonic()
    subprocess.run([str(query_image) if w == "%f" else w for w in digikam_split(exec_line)], env=launch_env,
                   check=True, timeout=300)
    timings["open with similar"] = time.monotonic() - started
    gallery = Path(wait_for_lines(opened, 1)[0])
    assert gallery.suffix == ".html" and gallery.read_text().count("<img") == len(names)
    similar_tags = {(name, "stylesearch/similar-to/page 0.png") for _, name in names[1:]}
    assert sidecar_tags(collection) == similar_tags  # every other image is a result (k = 20)
    morph_ends = [collection / "page 1.png", collection / "Inks 2024" / "ink 2.jpg"]
    subprocess.run(["gio", "launch", str(entries / "stylesearch-morph.desktop"), *map(str, morph_ends)], env=launch_env,
                   check=True, timeout=60)
    morph_page = Path(wait_for_lines(opened, 2)[1])
    assert morph_page.name.startswith("morph-page 1-to-ink 2-") and morph_page.suffix == ".html"
    morph_tags = sidecar_tags(collection) - similar_tags
    assert {tag for _, tag in morph_tags} == {"stylesearch/morph/page 1.png-to-ink 2.jpg"}
    assert {"page 1.png", "ink 2.jpg"} <= {name for name, _ in morph_tags}

    invoke("digikam", "tag", collection / "Inks 2024" / "ink 0.jpg", "-t", "stylesearch/direct-write", "--write-db", "--db", db)
    assert ("ink 0.jpg", "stylesearch/direct-write") in tags_of(db)
    expected = sidecar_tags(collection) | {("ink 0.jpg", "stylesearch/direct-write")}
    timings["rescan sidecars"] = run_digikam(env, db_dir, log, lambda: expected <= tags_of(db), "read the sidecar tags")
    assert tags_of(db) == expected
    version = subprocess.run(["digikam", "--version"], env={**env, "QT_QPA_PLATFORM": "offscreen"},
                             capture_output=True, text=True, timeout=60).stdout.strip()
    print(f"\n{version}: {len(names)} images scanned, synced and indexed; Open With similar (digiKam's Exec "
          f"splitting{', entry found through KService' if shutil.which('ktraderclient5') else ''}) and morph (gio launch) "
          f"opened their galleries and tagged {len(expected) - 1} results in XMP sidecars; those tags and one direct "
          f"database tag are in digiKam's tables after its rescan; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), file=sys.stderr)
