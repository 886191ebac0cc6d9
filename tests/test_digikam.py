"""digiKam integration without digiKam: databases built from digiKam 7.9's real schema
(tests/data), XMP sidecars parsed back with ElementTree, desktop entries checked with
desktop-file-validate, and the Batch Queue Manager script run by dash the way digiKam runs it.
The same flows against a real digiKam are in tests/test_digikam_integration.py."""

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from stylesearch.cli import cli
from stylesearch.integrations import digikam_db, xmp
from stylesearch.integrations.digikam import desktop_exec_word, install

from conftest import wait_for
from samples import drawing, save

SCHEMA = Path(__file__).parent / "data" / "digikam4-7.9.0-schema.sql"
NS = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "digiKam": "http://www.digikam.org/ns/1.0/",
      "lr": "http://ns.adobe.com/lightroom/1.0/", "dc": "http://purl.org/dc/elements/1.1/",
      "xmp": "http://ns.adobe.com/xap/1.0/"}
WEIRD = "it's a \"test\" $HOME `x` \\ & more"  # a folder name that breaks naive shell quoting


def invoke(*args, **env):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env or None, catch_exceptions=False)


def make_db(path: Path, roots: list[tuple], images: list[tuple]) -> Path:
    """A digikam4.db with digiKam's schema. roots: (label, status, type, identifier,
    specificPath); images: (root index, album relativePath, name, status, category)."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.read_text())
    for root in roots:
        conn.execute("INSERT INTO AlbumRoots (label, status, type, identifier, specificPath) VALUES (?, ?, ?, ?, ?)", root)
    for root, relative, name, status, category in images:
        conn.execute("INSERT OR IGNORE INTO Albums (albumRoot, relativePath) VALUES (?, ?)", (root + 1, relative))
        album = conn.execute("SELECT id FROM Albums WHERE albumRoot=? AND relativePath=?", (root + 1, relative)).fetchone()[0]
        conn.execute("INSERT INTO Images (album, name, status, category, fileSize) VALUES (?, ?, ?, ?, 0)",
                     (album, name, status, category))
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def collection(tmp_path):
    """A digiKam collection on disk (in a folder with an awkward name) and its database:
    4 visible images, plus a hidden, a trashed, an obsolete one and a video that stylesearch
    must not count, and a second, unmounted collection."""
    root = tmp_path / WEIRD / "Pictures"
    visible = [("/", "a.png"), ("/", "b.jpg"), ("/2024/inks", "c.png"), ("/2024/inks", "d.png")]
    for i, (relative, name) in enumerate(visible):
        save(drawing(seed=i, style=i % 3), root / relative.lstrip("/") / name)
    images = [(0, rel, name, 1, 1) for rel, name in visible]
    images += [(0, "/", "hidden.png", 2, 1), (0, "/", "trashed.png", 3, 1), (0, "/", "old.png", 4, 1),
               (0, "/", "clip.mp4", 1, 2), (1, "/", "far.png", 1, 1)]
    db = make_db(tmp_path / "digikam4.db",
                 [("Pictures", 0, 1, f"volumeid:?path={quote(str(root))}", "/"),  # QUrl-encoded, as digiKam stores it
                  ("USB disk", 0, 2, "volumeid:?uuid=0000-not-mounted", "/photos")], images)
    return root, db, [str(root / rel.lstrip("/") / name) for rel, name in visible]


def test_collections_resolve_like_digikam(tmp_path):
    share, empty = tmp_path / "share", tmp_path / "empty"
    (share / "x").mkdir(parents=True)
    empty.mkdir()
    db = make_db(tmp_path / "d.db", [
        ("by path", 0, 1, f"volumeid:?path={tmp_path}/", "/"),  # spaces stay raw in QUrl's pretty form
        ("by mount path", 0, 1, f"volumeid:?mountpath={tmp_path}/", f"/{share.name}"),
        ("network", 0, 3, f"networkshareid:?mountpath={empty}&mountpath={share}", "/"),
        ("hidden", 2, 1, f"volumeid:?path={share}", "/"),
        ("unmounted disk", 0, 2, "volumeid:?uuid=1234-ABCD", "/photos"),
        ("label", 0, 2, "volumeid:?label=NO_SUCH_LABEL", "/"),
    ], [])
    with digikam_db.connect_readonly(db) as conn:
        found = digikam_db.collections(conn)
    assert [(c.label, c.path, c.available) for c in found] == [
        ("by path", str(tmp_path), True),
        ("by mount path", str(share), True),
        ("network", str(share), True),  # the first mount path that is mounted (not empty) wins
        ("hidden", str(share), False),
        ("unmounted disk", None, False),
        ("label", None, False),
    ]


def test_image_paths_follow_status_and_category(collection):
    root, db, visible = collection
    with digikam_db.connect_readonly(db) as conn:
        assert digikam_db.image_paths(conn, digikam_db.collections(conn)) == visible


def test_database_is_opened_read_only(collection):
    _, db, _ = collection
    before = db.read_bytes()
    conn = digikam_db.connect_readonly(db)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM Images")
    conn.close()
    assert db.read_bytes() == before


def test_find_db_reads_digikams_settings(tmp_path, monkeypatch, collection):
    _, db, _ = collection
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DKDIR", str(db.parent))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(digikam_db.StyleSearchError, match="--db PATH"):
        digikam_db.find_db()
    rc = tmp_path / "config" / "digikamrc"
    rc.parent.mkdir()
    rc.write_text("[General Settings]\nVersion=7.9.0\n\n[Database Settings]\nDatabase Type=QSQLITE\n"
                  "Database Name[$e]=$DKDIR/\nDatabase Name Thumbnails=/elsewhere/\n")
    assert digikam_db.find_db() == db
    rc.write_text("[Database Settings]\nDatabase Type=QMYSQL\nDatabase Name=digikam\n")
    with pytest.raises(digikam_db.StyleSearchError, match="QMYSQL"):
        digikam_db.find_db()


def test_sync_watches_collections_and_counts_what_digikam_shows(collection, env):
    root, db, visible = collection
    before = db.read_bytes()
    first = invoke("digikam", "sync", "--db", db, "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert (report["images"], report["indexed"], report["daemon"]) == (4, 0, False)
    assert [c["available"] for c in report["collections"]] == [True, False]
    roots = json.loads(invoke("roots", "list", "--json").output)
    assert [r["path"] for r in roots] == [str(root)]

    indexed = json.loads(invoke("digikam", "sync", "--db", db, "--index", "--json").output)
    assert (indexed["images"], indexed["indexed"], indexed["not_indexed"]) == (4, 4, [])
    status = json.loads(invoke("status", "--json").output)
    assert status["counts"]["ok"] == 4
    assert db.read_bytes() == before  # digiKam's file untouched


def test_sync_errors_are_one_line(tmp_path, env):
    missing = invoke("digikam", "sync", "--db", tmp_path / "nope.db")
    assert missing.exit_code == 1 and missing.output.strip() == f"Error: no digiKam database at {tmp_path / 'nope.db'}"
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    junk = invoke("digikam", "sync", "--db", tmp_path / "junk.db")
    assert junk.exit_code == 1 and len(junk.output.strip().splitlines()) == 1 and "not a digiKam database" in junk.output
    nothing = make_db(tmp_path / "n.db", [("gone", 0, 1, "volumeid:?path=/no/such/folder", "/")], [])
    none = invoke("digikam", "sync", "--db", nothing)
    assert none.exit_code == 1 and "none of the 1 collections" in none.output


def sidecar_values(path: Path) -> dict[str, list[str]]:
    tree = ET.parse(path)
    return {field: [li.text for li in tree.getroot().iterfind(f".//{field}/*/rdf:li", NS)]
            for field in ("digiKam:TagsList", "lr:hierarchicalSubject", "dc:subject")}


def test_sidecar_is_created_with_digikams_name(tmp_path):
    image = save(drawing(), tmp_path / "page 1.png")
    written = xmp.add_keywords(image, [xmp.keyword("stylesearch", "similar-to", "a|b/c.png")])
    assert written == tmp_path / "page 1.png.xmp" and oct(written.stat().st_mode & 0o777) != "0o600"
    assert sidecar_values(written) == {"digiKam:TagsList": ["stylesearch/similar-to/a_b_c.png"],
                                      "lr:hierarchicalSubject": ["stylesearch|similar-to|a_b_c.png"], "dc:subject": []}
    assert ET.parse(written).getroot().find(".//digiKam:TagsList/rdf:Seq", NS) is not None
    assert ET.parse(written).getroot().find(".//lr:hierarchicalSubject/rdf:Bag", NS) is not None


RICH_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:dk="http://www.digikam.org/ns/1.0/" xmlns:lr="urn:not-lightroom" xmp:Rating="4">
   <dc:subject><rdf:Bag><rdf:li>inks</rdf:li></rdf:Bag></dc:subject>
   <dk:TagsList><rdf:Seq><rdf:li>Artists/Moebius</rdf:li></rdf:Seq></dk:TagsList>
   <lr:private>keep me</lr:private>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def test_existing_sidecar_is_merged_not_replaced(tmp_path):
    image = save(drawing(), tmp_path / "cover.jpg")
    lightroom = tmp_path / "cover.xmp"  # Lightroom's naming: digiKam reads this one when it exists
    lightroom.write_text(RICH_SIDECAR, encoding="utf-8")
    for _ in range(2):  # the second time adds nothing (keywords may come from a generator)
        keywords = (k for k in [("stylesearch", "similar-to", "q.png"), ("Artists", "Moebius")])
        assert xmp.add_keywords(image, keywords) == lightroom
    values = sidecar_values(lightroom)
    assert values["digiKam:TagsList"] == ["Artists/Moebius", "stylesearch/similar-to/q.png"]
    assert values["dc:subject"] == ["inks"]
    assert values["lr:hierarchicalSubject"] == ["stylesearch|similar-to|q.png", "Artists|Moebius"]
    text = lightroom.read_text(encoding="utf-8")
    root = ET.fromstring(text.encode())
    assert root.find(".//rdf:Description", NS).get(f"{{{NS['xmp']}}}Rating") == "4"
    assert root.find(".//{urn:not-lightroom}private").text == "keep me"
    assert text.count("<?xpacket") == 2 and 'xmlns:lr_="http://ns.adobe.com/lightroom/1.0/"' in text
    assert not (tmp_path / "cover.jpg.xmp").exists()


def test_tag_command_and_broken_sidecar(tmp_path, env):
    image = save(drawing(), tmp_path / "x.png")
    done = invoke("digikam", "tag", image, "-t", "/stylesearch/favourites/", "-t", "inks")
    assert done.exit_code == 0, done.output
    assert sidecar_values(tmp_path / "x.png.xmp")["digiKam:TagsList"] == ["stylesearch/favourites", "inks"]
    (tmp_path / "x.png.xmp").write_text("<x:xmpmeta oops", encoding="utf-8")
    broken = invoke("digikam", "tag", image, "-t", "a")
    assert broken.exit_code == 1 and broken.output.startswith("Error: cannot tag ") and len(broken.output.splitlines()) == 1
    assert (tmp_path / "x.png.xmp").read_text() == "<x:xmpmeta oops"


def tag_rows(db: Path) -> set[tuple[str, str]]:
    with digikam_db.connect_readonly(db) as conn:
        rows = conn.execute("SELECT i.name, t.id FROM ImageTags it JOIN Images i ON i.id = it.imageid "
                            "JOIN Tags t ON t.id = it.tagid").fetchall()
        names = {tid: (pid, name) for tid, pid, name in conn.execute("SELECT id, pid, name FROM Tags")}

    def path(tag_id):
        pid, name = names[tag_id]
        return f"{path(pid)}/{name}" if pid else name

    return {(image, path(tag_id)) for image, tag_id in rows}


@pytest.fixture
def fake_digikam(tmp_path):
    """A process whose name is `digikam`, as the real one's is."""
    binary = tmp_path / "digikam"
    shutil.copy(shutil.which("sleep"), binary)
    proc = subprocess.Popen([binary, "60"])
    assert wait_for(digikam_db.digikam_running)  # until it has exec'd: before that it bears the parent's name
    yield proc
    proc.kill()
    proc.wait()


def test_write_db_is_refused_while_digikam_runs(collection, env, fake_digikam):
    root, db, visible = collection
    before = db.read_bytes()
    refused = invoke("digikam", "tag", visible[0], "-t", "stylesearch/x", "--write-db", "--db", db)
    assert refused.exit_code == 1 and "digiKam is running: close it first" in refused.output
    assert db.read_bytes() == before and not list(db.parent.glob("*.stylesearch-backup-*"))
    assert not Path(visible[0] + ".xmp").exists()  # refused as a whole


def test_write_db_backs_up_then_tags_in_one_transaction(collection, env):
    root, db, visible = collection
    before = db.read_bytes()
    done = invoke("digikam", "tag", visible[0], visible[2], "-t", "stylesearch/similar-to/a.png", "--write-db", "--db", db)
    assert done.exit_code == 0, done.output
    assert "Assigned 2 tag(s)" in done.output
    [backup] = db.parent.glob("digikam4.db.stylesearch-backup-*")
    with sqlite3.connect(backup) as copy, sqlite3.connect(":memory:") as original:
        original.deserialize(before)
        assert list(copy.iterdump()) == list(original.iterdump())
    assert tag_rows(db) == {("a.png", "stylesearch/similar-to/a.png"), ("c.png", "stylesearch/similar-to/a.png")}
    with digikam_db.connect_readonly(db) as conn:  # digiKam's trigger kept TagsTree, which its tag view reads
        leaf = conn.execute("SELECT id FROM Tags WHERE name='a.png'").fetchone()[0]
        assert len(conn.execute("SELECT pid FROM TagsTree WHERE id=?", (leaf,)).fetchall()) == 3
    again = invoke("digikam", "tag", visible[0], "-t", "stylesearch/similar-to/a.png", "--write-db", "--db", db)
    assert "Assigned 0 tag(s)" in again.output
    outside = save(drawing(), db.parent / "outside.png")
    unknown = invoke("digikam", "tag", outside, "-t", "t", "--write-db", "--db", db)
    assert unknown.exit_code == 1 and "not in digiKam's database" in unknown.output
    assert "t" not in {path for _, path in tag_rows(db)}  # rolled back: no half-written tags


def exec_split(value: str) -> list[str]:
    """An Exec value split into arguments by the Desktop Entry spec, written independently of
    the installer: string-level unescaping first, then double quotes in which a backslash
    escapes one of " ` $ \\, and %% for a literal %."""
    value = value.replace("\\\\", "\0").replace("\\s", " ").replace("\0", "\\")
    words, word, quoted, escaped, started = [], "", False, False, False
    for char in value:
        if escaped:
            word, escaped = word + char, False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted, started = not quoted, True
        elif char == " " and not quoted:
            if word or started:
                words.append(word)
            word, started = "", False
        else:
            word += char
    if word or started:
        words.append(word)
    return [w.replace("%%", "%") for w in words]


def exec_words(desktop: Path) -> list[str]:
    return exec_split(next(line for line in desktop.read_text().splitlines() if line.startswith("Exec="))[5:])


def test_desktop_exec_quoting_round_trips():
    for word in ["/usr/bin/python3", "/opt/my venv/bin/python", WEIRD, "100%", "a'b", "--library"]:
        assert exec_split(desktop_exec_word(word)) == [word]


def digikam_split(value: str) -> list[str]:
    """How digiKam 7.9 itself runs an Open With entry (DServiceMenu::runFiles): split at
    spaces outside double quotes, strip a word's surrounding quotes, no other unescaping."""
    words = re.split(r' +(?=(?:[^"]*"[^"]*")*[^"]*$)', value)
    return [w[1:-1] if len(w) > 1 and w[0] == w[-1] == '"' else w for w in words if w]


@pytest.mark.skipif(not shutil.which("desktop-file-validate"), reason="desktop-file-validate not installed (apt install desktop-file-utils)")
@pytest.mark.parametrize("home", ["my data/share", f"{WEIRD}/share"])
def test_desktop_entries_are_valid_and_run_the_launcher(tmp_path, home):
    source = Path(__file__).parents[1] / "plugins" / "digikam"
    written = install(["/opt/venv/bin/python", "-m", "stylesearch", "--library", "/data/my library"], tmp_path / home,
                      tag_results=True)
    entries, launcher = written[:2], written[2]
    for desktop in [*source.glob("*.desktop"), *entries]:
        done = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stdout.strip(), f"{desktop}: {done.stdout}"
    assert exec_words(entries[0]) == [str(launcher), "digikam", "similar", "--tag", "%f"]
    assert exec_words(entries[1]) == [str(launcher), "digikam", "morph", "--tag", "%F"]
    if '"' not in home:  # digiKam's own splitting cannot take escaped quotes: the launcher path avoids them
        value = next(line for line in entries[0].read_text().splitlines() if line.startswith("Exec="))[5:]
        assert digikam_split(value) == [str(launcher), "digikam", "similar", "--tag", "%f"]
    assert "exec /opt/venv/bin/python -m stylesearch --library '/data/my library' \"$@\"" in launcher.read_text()
    mime = next(line for line in entries[0].read_text().splitlines() if line.startswith("MimeType="))
    assert {"image/jpeg", "image/png", "image/webp"} <= set(mime[9:].split(";"))


def test_plugins_command_installs_and_uninstalls(tmp_path, env):
    home = tmp_path / "xdg"
    done = invoke("plugins", "digikam", "--install", XDG_DATA_HOME=str(home))
    assert done.exit_code == 0, done.output
    folder = home / "stylesearch" / "digikam"
    assert (home / "applications" / "stylesearch-similar.desktop").is_file() and os.access(folder / "bqm-index.sh", os.X_OK)
    assert f"set -- {shlex.quote(str(folder / 'stylesearch'))}\n" in (folder / "bqm-index.sh").read_text()
    assert f"sh {shlex.quote(str(folder / 'bqm-index.sh'))} <<'STYLESEARCH_PATHS'\n$INPUT\n$OUTPUT\n" in done.output
    version = subprocess.run([folder / "stylesearch", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "stylesearch" in version.stdout
    assert invoke("plugins", "digikam").exit_code == 1
    removed = invoke("plugins", "digikam", "--uninstall", XDG_DATA_HOME=str(home))
    assert "Removed 5 file(s)" in removed.output and not folder.joinpath("stylesearch").exists()


def run_like_digikam(snippet: str, input_path: Path, output_path: Path, env: dict) -> subprocess.CompletedProcess:
    """What digiKam 7.9's User Shell Script tool does: put each file name in double quotes
    into the text, unescaped, then `/bin/sh -c TEXT` (dash here), 60 s at most."""
    text = snippet.replace("$INPUT", f'"{input_path}"').replace("$OUTPUT", f'"{output_path}"')
    return subprocess.run(["dash", "-c", text], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def bqm(tmp_path, env):
    """The installed Batch Queue Manager snippet and the environment digiKam would pass."""
    if not shutil.which("dash"):
        pytest.skip("dash not installed (apt install dash)")
    home = tmp_path / "xdg"
    install([sys.executable, "-m", "stylesearch"], home)
    snippet = (home / "stylesearch" / "digikam" / "bqm-user-script.txt").read_text()
    return snippet, {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}


def test_bqm_script_under_dash_with_hostile_names(tmp_path, bqm):
    snippet, environ = bqm
    folder = tmp_path / WEIRD
    image = save(drawing(seed=3), folder / "page \"1\" & it's $PATH `id`.png")
    output = folder / "BatchTool-Ab12Cd-9e1c7a12.digikamtempfile.png"
    done = run_like_digikam(snippet, image, output, environ)
    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == image.read_bytes()  # the queue gets its output file, unchanged
    assert json.loads(done.stdout.strip().splitlines()[-1])["added"] == 1
    listed = json.loads(invoke("similar", image, "--include-self", "--json").output.splitlines()[0])
    assert listed["path"] == str(image) and listed["distance"] == pytest.approx(0, abs=1e-5)


def test_bqm_script_skips_intermediate_files_and_needs_digikams_input(tmp_path, bqm):
    snippet, environ = bqm
    temp = save(drawing(), tmp_path / "BatchTool-x.digikamtempfile.png")
    skipped = run_like_digikam(snippet, temp, tmp_path / "out.png", environ)
    assert skipped.returncode == 0 and "put this tool first" in skipped.stderr and (tmp_path / "out.png").is_file()
    script = tmp_path / "xdg" / "stylesearch" / "digikam" / "bqm-index.sh"
    alone = subprocess.run(["dash", str(script)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert alone.returncode == 2 and "expected the input and output file names" in alone.stderr


def test_bqm_script_enqueues_into_the_running_daemon(tmp_path, bqm, running):
    snippet, environ = bqm
    service, _, library = running
    image = save(drawing(seed=5), tmp_path / "in queue.png")
    environ = {**environ, "STYLESEARCH_LIBRARY": str(library.folder), "STYLESEARCH_SOCKET": os.environ["STYLESEARCH_SOCKET"]}
    done = run_like_digikam(snippet, image, tmp_path / "out.png", environ)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip()) == {"queued": 1, "daemon": True}
    assert wait_for(lambda: (row := library.catalog.row(os.fsencode(image))) is not None and row.status == "ok")


def test_open_with_similar_and_morph_make_pictures_and_tag(collection, env):
    root, db, visible = collection
    assert invoke("digikam", "sync", "--db", db, "--index").exit_code == 0
    shown = invoke("digikam", "similar", visible[0], "-k", "2", "--tag", "--no-open")
    assert shown.exit_code == 0, shown.output
    gallery = Path(shown.output.strip())
    assert gallery.suffix == ".html" and "<img" in gallery.read_text()
    tagged = [p for p in visible if Path(p + ".xmp").exists()]
    assert len(tagged) == 2 and visible[0] not in tagged
    assert sidecar_values(Path(tagged[0] + ".xmp"))["digiKam:TagsList"] == ["stylesearch/similar-to/a.png"]

    sheet = invoke("digikam", "morph", visible[0], visible[3], "--steps", "3", "--sheet", "--no-open", "--tag")
    assert sheet.exit_code == 0, sheet.output
    assert Path(sheet.output.strip()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "stylesearch/morph/a.png-to-d.png" in sidecar_values(Path(visible[3] + ".xmp"))["digiKam:TagsList"]

    one = invoke("digikam", "morph", visible[0], "--no-open")
    assert one.exit_code == 1 and "exactly two images; 1 were selected" in one.output
    outside = invoke("digikam", "similar", visible[0], "--no-open", STYLESEARCH_LIBRARY=str(root / "no-library"))
    assert outside.exit_code == 1 and outside.output.startswith("Error: no library at")


def test_every_digikam_command_has_help(env):
    for args in (["digikam"], ["digikam", "sync"], ["digikam", "similar"], ["digikam", "morph"], ["digikam", "tag"],
                 ["plugins", "digikam"]):
        shown = invoke(*args, "--help")
        assert shown.exit_code == 0 and len(shown.output.splitlines()) > 8, args
