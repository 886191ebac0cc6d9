"""The calibre plugin without calibre: its zip, and its Qt-free logic imported from that zip
(result -> book matching, mark labels, finding and running stylesearch, the daemon socket).
The real calibre GUI is exercised by test_calibre_integration.py."""

import importlib
import json
import stat
import sys
import threading
import tomllib
import types
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from stylesearch import integrations
from stylesearch.cli import cli
from stylesearch.daemon import client as daemon_client
from stylesearch.daemon.service import Service
from stylesearch.errors import StyleSearchError
from stylesearch.integrations import calibre
from stylesearch.library.folder import Library
from stylesearch.search.similar import similar

from conftest import wait_for
from samples import drawing, save

REPO = Path(__file__).resolve().parents[1]
ROOT = "/books/Calibre Library"


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    return calibre.build_zip(tmp_path_factory.mktemp("plugin") / "stylesearch-calibre.zip")


@pytest.fixture(scope="module")
def logic(plugin_zip):
    """plugins/calibre/logic.py as calibre imports it: from the zip, as a package submodule
    (its `protocol` is the copy the zip carries). The package's __init__ needs calibre, so the
    package is made here without running it."""
    package = types.ModuleType("stylesearch_calibre_under_test")
    package.__path__ = [str(plugin_zip)]
    sys.modules[package.__name__] = package
    yield importlib.import_module(f"{package.__name__}.logic")
    for name in [n for n in sys.modules if n.split(".")[0] == package.__name__]:
        del sys.modules[name]


def executable(path: Path, body: str) -> Path:
    """A small Python script standing in for a command."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- the zip ------------------------------------------------------------------------------
def test_zip_carries_the_sources_and_the_protocol(plugin_zip, tmp_path):
    with zipfile.ZipFile(plugin_zip) as zf:
        names = set(zf.namelist())
        assert {"__init__.py", "action.py", "config.py", "logic.py", "results.py", "selftest.py",
                "plugin-import-name-stylesearch.txt", "protocol.py"} == names
        assert zf.read("protocol.py") == Path(daemon_client.__file__).read_bytes()  # one protocol definition
        for name in names - {"plugin-import-name-stylesearch.txt"}:
            compile(zf.read(name), name, "exec")
    assert calibre.build_zip(tmp_path / "again.zip").read_bytes() == plugin_zip.read_bytes()  # reproducible


def test_a_normal_install_ships_every_plugin_file(tmp_path, monkeypatch):
    """pyproject's data-files put the sources in share/stylesearch/plugins/calibre, where the
    builder looks when there is no source tree."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {p.name for pattern in patterns["share/stylesearch/plugins/calibre"] for p in REPO.glob(pattern)}
    assert shipped == set(calibre.plugin_files()) - {"protocol.py"}
    installed = tmp_path / "share" / "stylesearch" / "plugins" / "calibre"
    installed.mkdir(parents=True)
    for name in shipped:
        (installed / name).write_bytes((REPO / "plugins" / "calibre" / name).read_bytes())
    monkeypatch.setattr(integrations, "plugin_dirs", lambda name: [tmp_path / "no-checkout", installed])
    assert set(calibre.plugin_files()) == shipped | {"protocol.py"}
    monkeypatch.setattr(integrations, "plugin_dirs", lambda name: [tmp_path / "nowhere"])
    with pytest.raises(StyleSearchError, match="calibre plugin's files are missing"):
        calibre.plugin_files()


# --- which book a result is ---------------------------------------------------------------
@pytest.mark.parametrize("path, expected", [
    (f"{ROOT}/Jane Doe/Night Walk (12)/cover.jpg", 12),
    (f"{ROOT}/Jane Doe/Night Walk (12)/Night Walk - Jane Doe.cbz", 12),
    (f"{ROOT}/Jane Doe/Tales (Vol. 2) (7)/cover.jpg", 7),  # parentheses in the title
    (f"{ROOT}/Jane Doe/Old Title (5)/cover.jpg", 5),  # indexed before a title edit renamed the folder
    (f"{ROOT}/Jane Doe/Night Walk (12)/extra/cover.jpg", None),  # not a book folder's file
    (f"{ROOT}/Jane Doe/Night Walk 12/cover.jpg", None),
    (f"{ROOT}/metadata.db", None),
    (f"{ROOT}2/Jane Doe/Night Walk (12)/cover.jpg", None),  # another library next to it
    ("/home/me/Comics/Jane Doe/Night Walk (12)/cover.jpg", None),  # the user's other folders
])
def test_book_id_for(logic, path, expected):
    assert logic.book_id_for(path, ROOT) == expected


def test_book_id_for_only_known_books_and_through_symlinks(logic, tmp_path):
    real = tmp_path / "real library"
    (real / "A" / "T (3)").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    cover = str(real / "A" / "T (3)" / "cover.jpg")
    assert logic.book_id_for(cover, str(tmp_path / "link")) == 3  # calibre opened the library by its link
    assert logic.book_id_for(cover, str(real), known_ids={1, 2}) is None  # deleted from calibre since indexing


def test_results_carry_their_books(logic):
    hits = [{"rank": 1, "distance": 0.5, "path": f"{ROOT}/A/B (4)/cover.jpg"},
            {"rank": 2, "distance": 0.7, "path": "/elsewhere/x.png"}]
    assert [(r.rank, r.distance, r.book_id) for r in logic.similar_results(hits, ROOT, {4})] == [(1, 0.5, 4), (2, 0.7, None)]
    steps = [{"step": 0, "path": f"{ROOT}/A/B (4)/cover.jpg", "distance_to_a": 0.0, "distance_to_b": 2.0},
             {"step": 1, "path": f"{ROOT}/A/C (9)/cover.jpg", "distance_to_a": 1.5, "distance_to_b": 0.0}]
    assert [(r.rank, r.distance, r.book_id) for r in logic.morph_results(steps, ROOT, {4, 9})] == [(0, 0.0, 4), (1, 1.5, 9)]


# --- marks --------------------------------------------------------------------------------
def test_labels_keep_result_order_each_book_once(logic):
    # the query, then a hit outside the library, the query's own comic file, two books
    assert logic.labels([3, None, 3, 5, 7], "style_") == {3: "style_00", 5: "style_01", 7: "style_02"}
    wide = logic.labels(range(101), "morph_")
    assert wide[0] == "morph_000" and wide[100] == "morph_100" and sorted(wide.values()) == [wide[i] for i in range(101)]
    assert logic.labels([None], "style_") == {}


def test_merge_marks_keeps_the_users_own_marks(logic):
    current = {1: "true", 2: "style_01", 3: "to read", 4: "morph_00"}
    assert logic.merge_marks(current, {5: "style_00"}) == {1: "true", 3: "to read", 5: "style_00"}
    assert logic.merge_marks(current, {}) == {1: "true", 3: "to read"}
    assert logic.search_for(logic.SIMILAR_PREFIX) == "marked:style_"


def test_index_files_are_covers_and_optionally_comics(logic, tmp_path):
    cover, comic = save(drawing(), tmp_path / "cover.jpg"), tmp_path / "b.cbz"
    comic.write_bytes(b"PK")
    books = [logic.Book(1, str(cover), (str(comic),)), logic.Book(2, None, (str(comic),)),
             logic.Book(3, str(tmp_path / "gone.jpg"))]
    assert logic.index_files(books, with_comics=False) == [str(cover)]
    assert logic.index_files(books, with_comics=True) == [str(cover), str(comic), str(comic)]
    assert books[1].query_file() == str(comic) and logic.Book(4, None).query_file() is None


# --- finding and running stylesearch --------------------------------------------------------
def test_clean_env_drops_calibres_setup(logic):
    calibre_env = {"PATH": "/usr/bin", "HOME": "/home/me", "XDG_RUNTIME_DIR": "/run/user/1", "STYLESEARCH_LIBRARY": "/lib",
                   "LD_LIBRARY_PATH": "/opt/calibre/lib", "PYTHONPATH": "/opt/calibre/lib/python", "PYTHONHOME": "/opt",
                   "QT_PLUGIN_PATH": "/opt/calibre/plugins", "CALIBRE_CONFIG_DIRECTORY": "/c", "MAGICK_HOME": "/m"}
    assert logic.clean_env(calibre_env, use_daemon=True) == {
        "PATH": "/usr/bin", "HOME": "/home/me", "XDG_RUNTIME_DIR": "/run/user/1", "STYLESEARCH_LIBRARY": "/lib"}
    assert logic.clean_env(calibre_env, use_daemon=False)["STYLESEARCH_NO_DAEMON"] == "1"


def test_executable_autodetection(logic, tmp_path, monkeypatch):
    on_path = executable(tmp_path / "bin" / "stylesearch", "")
    user = executable(tmp_path / "home" / ".local" / "bin" / "stylesearch", "")
    assert logic.autodetect({"PATH": str(on_path.parent), "HOME": "/nonexistent"}) == str(on_path)
    assert logic.autodetect({"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path / "home")}) == str(user)
    assert logic.resolve_executable(str(user), {"PATH": ""}) == str(user)
    with pytest.raises(logic.StyleSearchFailed, match="set in the plugin's settings is not runnable"):
        logic.resolve_executable(str(tmp_path / "bin"), {})
    monkeypatch.setattr(logic, "usual_places", lambda home: [str(tmp_path / "nowhere")])
    with pytest.raises(logic.StyleSearchFailed, match="^stylesearch is not installed"):
        logic.resolve_executable("", {"PATH": str(tmp_path / "empty")})


FAKE_CLI = r"""
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "no_daemon": os.environ.get("STYLESEARCH_NO_DAEMON"),
                          "ld": os.environ.get("LD_LIBRARY_PATH")}) + "\n")
if os.environ.get("FAKE_ERROR"):
    sys.exit(print("some progress", file=sys.stderr) or print(os.environ["FAKE_ERROR"], file=sys.stderr) or 1)
op = sys.argv[1]
if op == "similar":
    print(json.dumps({"rank": 1, "distance": 0.25, "path": "/x/a.png"}))
    print(json.dumps({"rank": 2, "distance": 0.5, "path": "/x/b.png"}))
elif op == "morph":
    print(json.dumps({"step": 0, "path": sys.argv[2], "distance_to_a": 0.0, "distance_to_b": 1.0}))
    print(json.dumps({"step": 1, "path": sys.argv[3], "distance_to_a": 1.0, "distance_to_b": 0.0}))
elif op == "index":
    files = sys.argv[3:]
    print(json.dumps(json.loads(os.environ["FAKE_INDEX"]) if "FAKE_INDEX" in os.environ else
                     {"added": len(files) - 1, "updated": 0, "unchanged": 1, "failed": 0, "errors": [], "missing": []}))
"""


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    """A stand-in `stylesearch` that logs how it was called, and no daemon on the socket (which
    the plugin finds through the process environment); returns (environ, read_log)."""
    monkeypatch.setenv("STYLESEARCH_SOCKET", str(tmp_path / "no-daemon.sock"))
    script = executable(tmp_path / "bin" / "stylesearch", FAKE_CLI)
    log = tmp_path / "calls.jsonl"
    environ = {"PATH": str(script.parent), "HOME": str(tmp_path), "FAKE_LOG": str(log), "LD_LIBRARY_PATH": "/opt/calibre/lib"}
    return environ, lambda: [json.loads(line) for line in log.read_text().splitlines()]


def test_cli_queries_in_a_clean_environment(logic, fake_cli):
    environ, calls = fake_cli
    client = logic.Client(use_daemon=False, environ=environ)
    assert [h["path"] for h in client.similar("/q.jpg", 3)] == ["/x/a.png", "/x/b.png"]
    assert [s["path"] for s in client.morph("/a.jpg", "/b.jpg")] == ["/a.jpg", "/b.jpg"]
    assert calls() == [{"argv": ["similar", "/q.jpg", "-k", "3", "--json"], "no_daemon": "1", "ld": None},
                       {"argv": ["morph", "/a.jpg", "/b.jpg", "--k", "5", "--json"], "no_daemon": "1", "ld": None}]


def test_no_daemon_listening_falls_back_to_the_cli(logic, fake_cli):
    environ, calls = fake_cli
    assert len(logic.Client(use_daemon=True, environ=environ).similar("/q.jpg", 2)) == 2
    assert calls()[0]["no_daemon"] is None  # the CLI may still use a daemon that starts later


def test_cli_errors_become_one_line_reasons(logic, fake_cli):
    environ, _ = fake_cli
    environ["FAKE_ERROR"] = "Error: no library at /lib: run `stylesearch index PATH` first"
    with pytest.raises(logic.StyleSearchFailed) as failed:
        logic.Client(use_daemon=False, environ=environ).similar("/q.jpg", 3)
    assert str(failed.value) == ("no index yet: run \u201cIndex this library\u201d first "
                                 "(no library at /lib: run `stylesearch index PATH` first)")
    environ["FAKE_ERROR"] = "Error: path not found: /q.jpg"
    with pytest.raises(logic.StyleSearchFailed, match="^path not found: /q.jpg$"):
        logic.Client(use_daemon=False, environ=environ).similar("/q.jpg", 3)


def test_cli_indexing_runs_in_chunks_with_progress(logic, fake_cli, monkeypatch):
    environ, calls = fake_cli
    monkeypatch.setattr(logic, "INDEX_CHUNK", 2)
    client, progress = logic.Client(use_daemon=False, environ=environ), []
    files = [f"/c/{i}.jpg" for i in range(5)]
    summary = client.index(files, lambda fraction, text: progress.append((fraction, text)), lambda: False)
    assert summary == "indexed 5 file(s): 2 added, 3 unchanged"
    assert [c["argv"][2:] for c in calls()] == [files[0:2], files[2:4], files[4:]]
    assert progress == [(0.4, "2 of 5 files"), (0.8, "4 of 5 files"), (1.0, "5 of 5 files")]
    with pytest.raises(logic.StyleSearchFailed, match="stopped after 2 of 5 files"):
        client.index(files, lambda *_: None, lambda: len(calls()) >= 4)  # stopped by the user in calibre's jobs
    with pytest.raises(logic.StyleSearchFailed, match="no covers"):
        client.index([], lambda *_: None, lambda: False)
    environ["FAKE_INDEX"] = json.dumps({"queued": 2, "daemon": True})  # a daemon started meanwhile
    assert "daemon is indexing 5 file(s)" in client.index(files, lambda *_: None, lambda: False)


# --- the daemon -----------------------------------------------------------------------------
@pytest.fixture
def daemon(tmp_path, embedder, monkeypatch):
    """A real daemon (Service) on a socket in tmp, watching an empty folder."""
    monkeypatch.setenv("STYLESEARCH_SOCKET", str(tmp_path / "run" / "daemon.sock"))
    (tmp_path / "watched").mkdir()
    library = Library(tmp_path / "lib", create=True)
    service = Service(library, embedder, settle_s=0.3, save_every_s=0.5)
    thread = threading.Thread(target=service.serve, args=([str(tmp_path / "watched")],), daemon=True)
    thread.start()
    assert wait_for(lambda: (tmp_path / "run" / "daemon.sock").exists())
    yield library
    service.shutdown()
    thread.join(timeout=30)
    library.close()


def test_daemon_answers_the_plugin_like_the_library(logic, daemon, embedder, tmp_path):
    library_root = tmp_path / "calibre"
    books = {str(save(drawing(seed=i, style=i % 3), library_root / f"A/T ({i})/cover.jpg")): i for i in range(1, 7)}
    covers = list(books)
    client = logic.Client(environ={"PATH": ""})  # no CLI to fall back on: only the socket can answer
    assert "daemon is indexing 6 file(s)" in client.index(covers, lambda *_: None, lambda: False)
    assert wait_for(lambda: daemon.catalog.counts()["ok"] == 6)
    with Library(daemon.folder) as reader:
        expected = [h.to_dict() for h in similar(reader, covers[0], k=3, make_embedder=lambda _: embedder)]
    assert client.similar(covers[0], 3) == expected
    results = logic.similar_results(client.similar(covers[0], 3), str(library_root), set(books.values()))
    assert [r.book_id for r in results] == [books[h["path"]] for h in expected]
    steps = client.morph(covers[0], covers[5])
    assert steps[0]["path"] == covers[0] and steps[-1]["path"] == covers[5]
    with pytest.raises(logic.StyleSearchFailed, match="^query not found: .*missing.jpg$"):  # the daemon's own one-line error
        client.similar(str(tmp_path / "missing.jpg"), 3)


# --- the command ----------------------------------------------------------------------------
@pytest.fixture
def runner(env):
    return CliRunner()


def test_plugins_calibre_builds_a_zip(runner, tmp_path):
    assert "stylesearch plugins calibre --install" in runner.invoke(cli, ["plugins", "--help"]).output
    helped = runner.invoke(cli, ["plugins", "calibre", "--help"])
    assert helped.exit_code == 0 and "--build-zip" in helped.output and "Find books with similar art style" in helped.output
    built = runner.invoke(cli, ["plugins", "calibre", "--build-zip", str(tmp_path / "out" / "p.zip")])
    assert built.exit_code == 0 and zipfile.is_zipfile(tmp_path / "out" / "p.zip")
    nothing = runner.invoke(cli, ["plugins", "calibre"])
    assert nothing.exit_code == 1 and "give --build-zip FILE and/or --install" in nothing.output


def test_install_without_calibre_is_a_one_line_error(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = runner.invoke(cli, ["plugins", "calibre", "--install"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: calibre is not installed: calibre-customize and calibre-debug were not found on PATH "
        "(install calibre from https://calibre-ebook.com/download or your package manager)"]


def test_install_adds_the_zip_and_places_the_button(runner, tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    record = f"open({str(log)!r}, 'a').write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + '\\n')"
    executable(tmp_path / "bin" / "calibre-customize", record + "\nimport zipfile\nassert zipfile.is_zipfile(sys.argv[2])")
    executable(tmp_path / "bin" / "calibre-debug", record)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    result = runner.invoke(cli, ["plugins", "calibre", "--install", "--build-zip", str(tmp_path / "p.zip")])
    assert result.exit_code == 0, result.output
    customize, debug = [json.loads(line) for line in log.read_text().splitlines()]
    assert customize == ["calibre-customize", "-a", str(tmp_path / "p.zip")]
    assert debug[:2] == ["calibre-debug", "-c"] and "'action-layout-context-menu'" in debug[2] and "'StyleSearch'" in debug[2]
    executable(tmp_path / "bin" / "calibre-customize", "sys.exit(print('InvalidPlugin: broken zip', file=sys.stderr) or 1)")
    failed = runner.invoke(cli, ["plugins", "calibre", "--install"])
    assert failed.exit_code == 1
    assert failed.output.strip() == "Error: calibre-customize could not install the plugin: InvalidPlugin: broken zip"
