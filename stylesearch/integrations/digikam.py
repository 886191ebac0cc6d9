"""digiKam integration through the hooks digiKam already has (its C++ plugins are tied to one
digiKam version): "Open With" desktop entries, a Batch Queue Manager "User Shell Script",
its database for the collection list, and XMP sidecars for tags back.

    stylesearch digikam sync | similar | morph | tag      (the `digikam` group)
    stylesearch plugins digikam --install                 (`plugins_digikam`)

The Open With commands run `stylesearch similar/morph --json` in a child process, so they
answer exactly as the command line does (through the daemon when it runs).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import StyleSearchError
from . import plugin_dir

if TYPE_CHECKING:
    from ..cli import _State

DESKTOP_FILES = ("stylesearch-similar.desktop", "stylesearch-morph.desktop")
BQM_SCRIPT, BQM_SNIPPET = "bqm-index.sh", "bqm-user-script.txt"
_COMMAND_LINE = "set -- stylesearch  # `stylesearch plugins digikam --install` writes the full command here"
_SNIPPET_SCRIPT = "~/.local/share/stylesearch/digikam/bqm-index.sh"


def stylesearch_command(ctx: click.Context) -> list[str]:
    """This stylesearch as a command line, with the global options it was given (library,
    model, ...), for child processes and for digiKam to run later."""
    words = [sys.executable, "-m", "stylesearch"]
    params = ctx.find_root().params
    for name in ("library", "model"):
        if params.get(name):
            words += [f"--{name}", str(Path(params[name]).expanduser().resolve())]
    if params.get("device"):
        words += ["--device", params["device"]]
    if params.get("precision") not in (None, "auto"):
        words += ["--precision", params["precision"]]
    return words


@click.group("digikam")
def digikam() -> None:
    """Use stylesearch from digiKam: index its collections, find similar styles from its
    Open With menu, and tag the results so digiKam shows them.

    \b
    Start with:
      stylesearch plugins digikam --install   # Open With entries + Batch Queue script
      stylesearch digikam sync                # watch digiKam's collections
      stylesearch daemon start                # keeps them indexed
    Then in digiKam: right-click an image > Open With > Find similar art style.
    """


@digikam.command("sync")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="digiKam's digikam4.db (default: the one named in digiKam's settings, ~/.config/digikamrc).")
@click.option("--index", "index_now", is_flag=True,
              help="Without a running daemon, index the collections now (no progress bar: `stylesearch index` has one).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: collections, images, indexed.")
@click.pass_obj
def sync(state: _State, db: Path | None, index_now: bool, as_json: bool) -> None:
    """Watch digiKam's collections, so stylesearch indexes what digiKam shows.

    Reads digiKam's database read-only (never changes it), adds every available collection
    as a watched folder, and asks the running daemon to index them. Then counts how many of
    the images digiKam shows (not hidden, trashed or videos) are indexed.
    """
    from . import digikam_db  # here, not at the top: every stylesearch command imports this module

    db = db or digikam_db.find_db()
    with closing(digikam_db.connect_readonly(db)) as conn:
        found = digikam_db.collections(conn)
        shown = digikam_db.image_paths(conn, found)
    folders = [c.path for c in found if c.available]
    if not folders:
        raise StyleSearchError(f"none of the {len(found)} collections in {db} is available on this machine")
    with state.library(create=True) as lib, lib.catalog.transaction():
        for folder in folders:
            lib.catalog.add_root(os.fsencode(folder))
    daemon = state.daemon("rescan", {}) is not None
    if index_now and not daemon:
        from ..library.indexer import index_paths

        with state.library() as lib:
            index_paths(lib, folders, state.embedder())
    with state.library() as lib:
        rows = [lib.catalog.row(os.fsencode(path)) for path in shown]
    missing = [path for path, row in zip(shown, rows, strict=True) if row is None or row.status != "ok"]
    report = {"db": str(db), "daemon": daemon, "images": len(shown), "indexed": len(shown) - len(missing),
              "not_indexed": missing[:20],
              "collections": [{"label": c.label, "path": c.path, "available": c.available} for c in found]}
    if as_json:
        click.echo(json.dumps(report))
        return
    for c in found:
        click.echo(f"{'watching' if c.available else 'skipped (hidden or not mounted)'}: {c.path or c.label}")
    click.echo(f"digiKam shows {len(shown)} images; {report['indexed']} are indexed.")
    if missing:
        click.echo("The daemon is indexing the rest." if daemon else
                   "Run `stylesearch daemon start` (keeps them indexed) or `stylesearch index` to index the rest.")


@digikam.command("similar")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-k", "k", default=20, show_default=True, help="How many works to show.")
@click.option("--sheet", "as_sheet", is_flag=True, help="Make a contact sheet (PNG) instead of the HTML gallery.")
@click.option("--tag", is_flag=True,
              help="Also tag each result stylesearch/similar-to/<IMAGE's name> in its XMP sidecar (digiKam: Item > Reread Metadata From Files).")
@click.option("--no-open", is_flag=True, help="Print the result file's path instead of opening it.")
@click.pass_context
def similar(ctx: click.Context, image: Path, k: int, as_sheet: bool, tag: bool, no_open: bool) -> None:
    """Show the works drawn most like IMAGE: digiKam's Open With > Find similar art style.

    Opens an HTML gallery (or a contact sheet) of the nearest styles in your default
    browser or viewer.
    """
    from . import xmp

    with _told_on_desktop():
        hits, picture = _answer(ctx, "similar", [str(image), "-k", str(k)], image.stem, as_sheet)
        if tag:
            _tag_sidecars([h["path"] for h in hits], xmp.keyword("stylesearch", "similar-to", image.name))
        _show(picture, no_open)


@digikam.command("morph")
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--steps", type=int, default=8, show_default=True, help="How many works along the way (A and B included).")
@click.option("--sheet", "as_sheet", is_flag=True, help="Make a contact sheet (PNG) instead of the HTML gallery.")
@click.option("--tag", is_flag=True, help="Also tag each work on the way stylesearch/morph/<A>-to-<B> in its XMP sidecar.")
@click.option("--no-open", is_flag=True, help="Print the result file's path instead of opening it.")
@click.pass_context
def morph(ctx: click.Context, images: tuple[Path, ...], steps: int, as_sheet: bool, tag: bool, no_open: bool) -> None:
    """Show works whose style leads from one image to another: digiKam's Open With > Style
    morph, with exactly two images selected."""
    from . import xmp

    with _told_on_desktop():
        if len(images) != 2:
            raise StyleSearchError(f"Style morph needs exactly two images; {len(images)} were selected")
        a, b = images
        answer, picture = _answer(ctx, "morph", [str(a), str(b), "--steps", str(steps)], f"{a.stem}-to-{b.stem}", as_sheet)
        if tag:
            _tag_sidecars([s["path"] for s in answer], xmp.keyword("stylesearch", "morph", f"{a.name}-to-{b.name}"))
        _show(picture, no_open)


@digikam.command("tag")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-t", "--tag", "tags", multiple=True, required=True, metavar="A/B/C",
              help="A tag, levels separated by '/', e.g. stylesearch/favourites (repeat for more).")
@click.option("--write-db", is_flag=True,
              help="Also assign the tags in digikam4.db. Only while digiKam is closed; a backup copy is made first.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="digikam4.db for --write-db (default: from digiKam's settings).")
def tag(images: tuple[str, ...], tags: tuple[str, ...], write_db: bool, db: Path | None) -> None:
    """Tag IMAGES in their XMP sidecars (and, with --write-db, in digiKam's database).

    digiKam reads sidecar tags when Settings > Configure digiKam > Metadata > Sidecars has
    "Read from sidecar files" on: select the images, then Item > Reread Metadata From Files.
    """
    from . import digikam_db, xmp

    keywords = [xmp.keyword(*t.strip("/").split("/")) for t in tags]
    if write_db:  # first, so that a refusal (digiKam running, unknown image) changes nothing
        backup, assigned = digikam_db.write_tags(db or digikam_db.find_db(), {image: keywords for image in images})
        click.echo(f"Assigned {assigned} tag(s) in digiKam's database (backup: {backup}).")
    _tag_sidecars(list(images), *keywords)
    click.echo(f"Tagged {len(images)} image(s) in their XMP sidecars.")


def _answer(ctx: click.Context, command: str, args: list[str], stem: str, as_sheet: bool) -> tuple[list[dict], Path]:
    """Run `stylesearch similar|morph ... --json` with a picture; its JSON lines and picture."""
    import platformdirs

    folder = Path(platformdirs.user_cache_dir("stylesearch")) / "digikam"
    folder.mkdir(parents=True, exist_ok=True)
    picture = folder / f"{command}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}.{'png' if as_sheet else 'html'}"
    done = subprocess.run([*stylesearch_command(ctx), command, *args, "--json", "--sheet" if as_sheet else "--html",
                           str(picture)], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode:
        lines = (done.stderr.strip() or f"stylesearch {command} failed ({done.returncode})").splitlines()
        raise StyleSearchError(lines[-1].removeprefix("Error: "))
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()], picture


def _tag_sidecars(paths: list[str], *keywords: tuple[str, ...]) -> None:
    from . import xmp

    for path in paths:
        try:
            xmp.add_keywords(path, keywords)
        except (OSError, ValueError) as exc:
            raise StyleSearchError(f"cannot tag {path}: {exc}") from None


def _show(picture: Path, no_open: bool) -> None:
    if no_open:
        click.echo(str(picture))
        return
    opener = shutil.which("xdg-open")
    if opener:
        subprocess.Popen([opener, str(picture)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    else:
        import webbrowser

        webbrowser.open(picture.as_uri())


@contextmanager
def _told_on_desktop() -> Iterator[None]:
    """digiKam starts Open With entries without a terminal: an error also becomes a desktop
    notification (when notify-send exists), or the user would see nothing happen."""
    try:
        yield
    except StyleSearchError as exc:
        notify = shutil.which("notify-send")
        if notify and not sys.stderr.isatty():
            with suppress(OSError, subprocess.SubprocessError):
                subprocess.run([notify, "--app-name=stylesearch", "stylesearch", str(exc)], check=False,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        raise


# --- installing the Open With entries and the Batch Queue Manager script --------------------

def data_home() -> Path:
    """The user's XDG data dir, where desktops look for applications."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


class Installed:
    """The files `install` writes under an XDG data dir: the Open With entries, a launcher
    they and the queue script run, the Batch Queue Manager script and the text to paste."""

    def __init__(self, home: Path) -> None:
        folder = home / "stylesearch" / "digikam"
        self.entries = [home / "applications" / name for name in DESKTOP_FILES]
        self.launcher, self.script, self.snippet = folder / "stylesearch", folder / BQM_SCRIPT, folder / BQM_SNIPPET

    def paths(self) -> list[Path]:
        return [*self.entries, self.launcher, self.script, self.snippet]


def desktop_exec_word(word: str) -> str:
    """One argument of a desktop entry's Exec key, quoted as the Desktop Entry spec asks
    (reserved characters in double quotes, then the string-level escaping of backslashes)."""
    word = word.replace("%", "%%")
    if not any(c in word for c in " \t\n\"'\\><~|&;$*?#()`"):
        return word
    inner = "".join("\\" + c if c in '"`$\\' else c for c in word)
    return f'"{inner}"'.replace("\\", "\\\\")


def install(command: list[str], home: Path, tag_results: bool = False) -> list[Path]:
    """Write the Open With entries and the Batch Queue Manager script under the XDG data dir
    `home`, both running `command` through one launcher script; returns the files written.

    The launcher keeps the entries' Exec lines free of escapes: digiKam splits Exec at
    spaces outside double quotes and strips the quotes, but undoes no backslash escapes."""
    source, files = plugin_dir("digikam", BQM_SCRIPT), Installed(home)
    _write(files.launcher, "#!/bin/sh\n# stylesearch as `stylesearch plugins digikam --install` ran it (same Python, "
                           f"library and model).\nexec {shlex.join(command)} \"$@\"\n", 0o755)
    for name, target in zip(DESKTOP_FILES, files.entries, strict=True):
        lines = []
        for line in (source / name).read_text(encoding="utf-8").splitlines():
            if line.startswith("Exec=stylesearch "):
                *args, field_code = line.split()[1:]
                words = [str(files.launcher), *args, *(["--tag"] if tag_results else [])]
                line = "Exec=" + " ".join(map(desktop_exec_word, words)) + " " + field_code
            lines.append(line)
        _write(target, "\n".join(lines) + "\n", 0o644)
    text = (source / BQM_SCRIPT).read_text(encoding="utf-8")
    if _COMMAND_LINE not in text:
        raise StyleSearchError(f"{source / BQM_SCRIPT}: the command line to fill in is missing")
    _write(files.script, text.replace(_COMMAND_LINE, "set -- " + shlex.quote(str(files.launcher))), 0o755)
    snippet = (source / BQM_SNIPPET).read_text(encoding="utf-8")
    _write(files.snippet, snippet.replace(_SNIPPET_SCRIPT, shlex.quote(str(files.script))), 0o644)
    _refresh_menus(home / "applications")
    return files.paths()


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _refresh_menus(applications: Path) -> None:
    """Let desktops see new or removed entries now: the MIME cache of that folder, and KDE's
    service cache (what digiKam's Open With asks) when it is the user's own folder."""
    tools = [["update-desktop-database", str(applications)]]
    if applications == data_home() / "applications":
        tools.append(["kbuildsycoca5"])
    for tool in tools:
        if shutil.which(tool[0]):
            subprocess.run(tool, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=120)


@click.command("digikam")
@click.option("--install", "install_it", is_flag=True,
              help="Add the Open With entries to ~/.local/share/applications and the Batch Queue Manager script to "
                   "~/.local/share/stylesearch/digikam (XDG_DATA_HOME). Restart digiKam afterwards.")
@click.option("--tag-results", is_flag=True,
              help="With --install: the Open With entries also tag their results (XMP sidecars).")
@click.option("--uninstall", is_flag=True, help="Remove the files --install wrote.")
@click.pass_context
def plugins_digikam(ctx: click.Context, install_it: bool, tag_results: bool, uninstall: bool) -> None:
    """digiKam: Open With > "Find similar art style" and "Style morph", and a Batch Queue
    Manager script that indexes the queue's images.

    \b
    Typical use:
      stylesearch plugins digikam --install
      stylesearch digikam sync && stylesearch daemon start
      then restart digiKam, right-click an image > Open With > Find similar art style.
    The installed entries run this stylesearch with the --library/--model given here.
    Step-by-step setup of the Batch Queue Manager: plugins/digikam/README.md.
    """
    if install_it == uninstall:
        raise StyleSearchError("give --install or --uninstall (see --help)")
    home = data_home()
    if uninstall:
        removed = [p for p in Installed(home).paths() if p.exists()]
        for path in removed:
            path.unlink()
        _refresh_menus(home / "applications")
        click.echo(f"Removed {len(removed)} file(s).")
        return
    written = install(stylesearch_command(ctx), home, tag_results)
    for path in written:
        click.echo(f"Wrote {path}")
    click.echo("\nRestart digiKam: Open With now lists 'Find similar art style' and 'Style morph'.\n"
               "Batch Queue Manager: add Base Tools > Custom Tools > User Shell Script to a queue and paste:\n")
    click.echo(written[-1].read_text(encoding="utf-8"))
