"""The calibre plugin in a real calibre: a library made with `calibredb add` from generated
CBZ comics, the plugin installed with `stylesearch plugins calibre --install`, and the GUI
started offscreen with the plugin's self-test plan (plugins/calibre/selftest.py). The marks
it sets must be exactly what `stylesearch similar/morph --json` answer for the same covers.

Needs calibre (`apt install calibre`; plugins/calibre/integration.sh installs it and runs this).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from samples import cbz, drawing, encoded

TOOLS = ("calibre", "calibredb", "calibre-debug", "calibre-customize")
pytestmark = pytest.mark.skipif(not all(map(shutil.which, TOOLS)),
                                reason="calibre is not installed (apt install calibre, or run plugins/calibre/integration.sh)")

BOOKS = 6
GUI_TIMEOUT_S = 300
# calibre's first start would show its welcome wizard and add its Quick Start Guide book.
FIRST_RUN_DONE = """
from calibre.gui2 import gprefs
from calibre.utils.config import dynamic
dynamic.set('welcome_wizard_was_run', True)
gprefs['quick_start_guide_added'] = True
"""


@pytest.fixture
def setup(tmp_path, tiny_model):
    """A calibre library of 6 comics (3 styles), calibre's and stylesearch's settings in tmp,
    and the plugin installed; returns (environment, library folder, {book id: cover})."""
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""), "QT_QPA_PLATFORM": "offscreen",
           "CALIBRE_CONFIG_DIRECTORY": str(tmp_path / "calibre-config"),
           "CALIBRE_CACHE_DIRECTORY": str(tmp_path / "calibre-cache"),
           "STYLESEARCH_LIBRARY": str(tmp_path / "stylesearch-library"), "STYLESEARCH_MODEL": str(tiny_model),
           "STYLESEARCH_CONFIG": os.devnull, "STYLESEARCH_SOCKET": str(tmp_path / "run" / "daemon.sock")}
    comics = [cbz(tmp_path / "in" / f"comic{i}.cbz", {"page1.png": encoded(drawing(seed=i, style=i % 3), "PNG")})
              for i in range(BOOKS)]
    library = tmp_path / "calibre-library"
    run(["calibredb", "add", "--library-path", library, *comics], env)
    run([Path(venv_bin) / "stylesearch", "plugins", "calibre", "--install"], env)
    run(["calibre-debug", "-c", FIRST_RUN_DONE], env)
    covers = {book_id(p): p for p in library.glob("*/*/cover.jpg")}
    assert sorted(covers) == list(range(1, BOOKS + 1))
    return env, library, covers


def run(command, env, **options) -> str:
    done = subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True, timeout=GUI_TIMEOUT_S, **options)
    assert done.returncode == 0, f"{command[0]} failed: {done.stderr[-2000:]}"
    return done.stdout


def book_id(path) -> int | None:
    """calibre's book folder is '<title> (<id>)' (checked here independently of the plugin)."""
    found = re.fullmatch(r".* \((\d+)\)", Path(path).parent.name)
    return int(found.group(1)) if found else None


def stylesearch(env, *args) -> list[dict]:
    """What the command line answers, in-process (no daemon), as JSON lines."""
    out = run([Path(sys.executable).with_name("stylesearch"), *args, "--json"], {**env, "STYLESEARCH_NO_DAEMON": "1"})
    return [json.loads(line) for line in out.splitlines()]


def selftest(env, library, tmp_path, steps) -> list[dict]:
    """Start calibre offscreen with a self-test plan; the record of each step."""
    plan, out = tmp_path / "plan.json", tmp_path / "selftest.json"
    plan.write_text(json.dumps({"out": str(out), "steps": steps}))
    started = time.monotonic()
    done = subprocess.run(["calibre", "--no-update-check", "--with-library", str(library)], capture_output=True, text=True,
                          env={**env, "STYLESEARCH_CALIBRE_SELFTEST": str(plan)}, timeout=GUI_TIMEOUT_S)
    assert out.is_file(), f"calibre exited ({done.returncode}) without a self-test record: {done.stderr[-3000:]}"
    print(f"calibre self-test: {len(steps)} steps in {time.monotonic() - started:.1f} s")
    return json.loads(out.read_text())["steps"]


def expected_marks(prefix: str, book_ids) -> dict[str, str]:
    return {str(b): f"{prefix}{n:02d}" for n, b in enumerate(book_ids)}


def test_plugin_in_calibre_without_daemon(setup, tmp_path):
    """The command-line path: the plugin says why it cannot search yet, indexes the covers,
    finds similar books, restores the user's search, and morphs, all through `stylesearch`
    subprocesses."""
    env, library, covers = setup
    steps = selftest(env, library, tmp_path, [["search", "title:comic"], ["sort", "title"], ["settings", {"results": 4}],
                                              ["similar", 1], ["index"], ["similar", 1], ["restore"], ["morph", 1, 6]])
    search, sort, settings, too_early, index, similar, restore, morph = steps
    assert too_early["error"].startswith("no index yet: run \u201cIndex this library\u201d first (no library at ")
    assert [s["error"] for s in steps if s is not too_early] == [None] * 7
    assert settings["message"] == f"auto-detected: {Path(sys.executable).with_name('stylesearch')}"
    assert search["search"] == "title:comic" and sort["view"] == list(range(1, BOOKS + 1))
    assert index["message"].startswith(f"indexed {BOOKS} file(s): {BOOKS} added")

    hits = stylesearch(env, "similar", covers[1], "-k", "4")  # the number of results set above
    assert len(hits) == 4
    ranked = [1] + [book_id(h["path"]) for h in hits]
    assert similar["marked"] == expected_marks("style_", ranked)
    assert similar["search"] == "marked:style_" and similar["view"] == ranked  # the book list, in result order
    assert similar["dialog"] == len(hits)

    assert restore["search"] == "title:comic" and restore["marked"] == {} and restore["view"] == sort["view"]

    path = [book_id(s["path"]) for s in stylesearch(env, "morph", covers[1], covers[6], "--k", "5")]
    assert path[0] == 1 and path[-1] == 6
    assert morph["marked"] == expected_marks("morph_", path) and morph["view"] == path


def test_plugin_in_calibre_through_the_daemon(setup, tmp_path):
    """The socket path: a running daemon answers the plugin; same marks as the command line."""
    env, library, covers = setup
    stylesearch(env, "index", *covers.values())
    watched = tmp_path / "watched"
    watched.mkdir()
    daemon = subprocess.Popen([Path(sys.executable).with_name("stylesearch"), "daemon", "run", str(watched)], env=env,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not Path(env["STYLESEARCH_SOCKET"]).exists():
            assert daemon.poll() is None and time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.2)
        no_cli = {**env, "PATH": os.defpath}  # the plugin cannot find `stylesearch`: only the daemon can answer
        similar, index = selftest(no_cli, library, tmp_path, [["similar", 4], ["index"]])
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    hits = stylesearch(env, "similar", covers[4], "-k", "20")
    assert similar["error"] is None and similar["marked"] == expected_marks("style_", [4] + [book_id(h["path"]) for h in hits])
    assert index["error"] is None and index["message"].startswith(f"the stylesearch daemon is indexing {BOOKS} file(s)")
