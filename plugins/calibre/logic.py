"""The plugin's logic, free of Qt and calibre, so the normal test suite can import it from the
built zip: which files stand for a book, which book a result path is, result labels for
`set_marked_ids`, and how to reach stylesearch (its daemon's socket, else its command line).

calibre's own binaries run a frozen Python without torch or numpy, so nothing here imports
stylesearch; `protocol` is stylesearch's stdlib-only daemon client, copied in at build time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field

from . import protocol

SIMILAR_PREFIX = "style_"
MORPH_PREFIX = "morph_"
COMIC_FORMATS = ("CBZ", "CBR", "PDF")  # the book formats stylesearch reads a cover from
INDEX_CHUNK = 200  # files per `stylesearch index` call: bounded argv, and a progress step each
MORPH_K = 5  # neighbours per work in the style graph (the paper's value, the CLI's default)
_IN_BACKGROUND = "the stylesearch daemon is indexing {} file(s) in the background (see `stylesearch daemon status`)"

_BOOK_FOLDER = re.compile(r".* \((\d+)\)")
# What calibre's frozen builds and its Qt set up for themselves; a Python tool started with
# them may load calibre's libraries instead of its own.
_FOREIGN_ENV = ("LD_", "DYLD_", "PYTHON", "QT_", "QTWEBENGINE_", "CALIBRE_", "MAGICK_", "FONTCONFIG_", "SSL_CERT_")


class StyleSearchFailed(Exception):
    """A one-line reason, shown to the user as it is."""


@dataclass(frozen=True)
class Book:
    """What the plugin needs of a calibre book: its id, cover file and comic files."""

    id: int
    cover: str | None
    comics: tuple[str, ...] = ()

    def query_file(self) -> str | None:
        """The file that stands for the book's style: the cover, else its first comic file."""
        return self.cover or next(iter(self.comics), None)


@dataclass(frozen=True)
class Result:
    """One similar hit or morph step, and the book of this library it is (None: outside)."""

    rank: int  # similar rank, or morph step
    distance: float  # to the query, or to A for a morph step
    path: str
    book_id: int | None


def index_files(books: Iterable[Book], with_comics: bool) -> list[str]:
    """Covers (and, if asked, comic files) that exist, in book order."""
    files = []
    for book in books:
        files += [f for f in ((book.cover,) + (book.comics if with_comics else ())) if f and os.path.isfile(f)]
    return files


def book_id_for(path: str, library_root: str, known_ids: Container | None = None) -> int | None:
    """The book a file belongs to: calibre keeps each book in <library>/<author>/<title> (<id>)/.
    The id in the folder name survives title and author edits, which rename the folder, so
    an index made before an edit still leads to the right book."""
    for root, target in ((library_root, path), (os.path.realpath(library_root), os.path.realpath(path))):
        relative = os.path.relpath(target, root)
        parts = relative.split(os.sep)
        if len(parts) == 3 and parts[0] != os.pardir and (match := _BOOK_FOLDER.fullmatch(parts[1])):
            book_id = int(match.group(1))
            return book_id if known_ids is None or book_id in known_ids else None
    return None


def similar_results(hits: Iterable[Mapping], library_root: str, known_ids: Container) -> list[Result]:
    """Daemon or `similar --json` hits ({rank, distance, path}) with their books."""
    return [Result(h["rank"], h["distance"], h["path"], book_id_for(h["path"], library_root, known_ids)) for h in hits]


def morph_results(steps: Iterable[Mapping], library_root: str, known_ids: Container) -> list[Result]:
    """Morph steps ({step, path, distance_to_a, distance_to_b}) with their books."""
    return [Result(s["step"], s["distance_to_a"], s["path"], book_id_for(s["path"], library_root, known_ids))
            for s in steps]


def labels(book_ids: Iterable[int | None], prefix: str) -> dict[int, str]:
    """Marks that sort in result order (prefix + zero-padded position, from 00): each book
    once, at its first place; results outside the library (None) take no place."""
    ordered = list(dict.fromkeys(i for i in book_ids if i is not None))
    width = max(2, len(str(len(ordered) - 1)))
    return {book_id: f"{prefix}{n:0{width}d}" for n, book_id in enumerate(ordered)}


def merge_marks(current: Mapping[int, str], new: Mapping[int, str]) -> dict[int, str]:
    """The user's own marks stay; the plugin's earlier result labels make way for the new ones."""
    kept = {i: v for i, v in current.items() if not str(v).startswith((SIMILAR_PREFIX, MORPH_PREFIX))}
    return {**kept, **new}


def search_for(prefix: str) -> str:
    """The calibre search showing one kind of result (`marked:` matches a label's text)."""
    return f"marked:{prefix}"


def clean_env(environ: Mapping[str, str], use_daemon: bool) -> dict[str, str]:
    """The environment for a stylesearch subprocess: without calibre's library and Python
    paths, and telling the CLI to skip the daemon when the user turned it off."""
    env = {k: v for k, v in environ.items() if not k.startswith(_FOREIGN_ENV)}
    if not use_daemon:
        env["STYLESEARCH_NO_DAEMON"] = "1"
    return env


def usual_places(home: str) -> list[str]:
    """Where `stylesearch` is installed when calibre's PATH (set by a desktop launcher) does
    not show it: pip --user, pipx, a venv in the clone the README suggests, Homebrew."""
    return [os.path.join(home, ".local", "bin", "stylesearch"),
            os.path.join(home, ".local", "pipx", "venvs", "stylesearch", "bin", "stylesearch"),
            os.path.join(home, "stylesearch", ".venv", "bin", "stylesearch"),
            "/usr/local/bin/stylesearch", "/opt/homebrew/bin/stylesearch"]


def autodetect(environ: Mapping[str, str]) -> str | None:
    """`stylesearch` on PATH, else in one of the usual places."""
    found = shutil.which("stylesearch", path=environ.get("PATH", os.defpath))
    home = environ.get("HOME") or os.path.expanduser("~")
    return found or next((p for p in usual_places(home) if _runnable(p)), None)


def resolve_executable(configured: str, environ: Mapping[str, str]) -> str:
    """The configured executable, or the auto-detected one; a one-line reason if neither runs."""
    if configured:
        if not _runnable(configured):
            raise StyleSearchFailed(f"the stylesearch executable set in the plugin's settings is not runnable: {configured}")
        return configured
    found = autodetect(environ)
    if not found:
        raise StyleSearchFailed("stylesearch is not installed (or not found): install it, or set its path in the "
                                "plugin's settings")
    return found


def explain(message: str) -> str:
    """stylesearch's one-line error, in the plugin's words where a next step helps."""
    message = message.strip().removeprefix("Error: ")
    if message.startswith("no library at"):
        return f"no index yet: run \u201cIndex this library\u201d first ({message})"
    return message


@dataclass
class Client:
    """stylesearch as the plugin reaches it: the daemon's socket when one answers (and the
    user allows it), else the command line with `--json`. Every failure is StyleSearchFailed.
    `environ` is where the executable is looked for and what the subprocess gets (cleaned); the
    socket's place comes from the process environment, as for every stylesearch client."""

    executable: str = ""  # "" = auto-detect
    use_daemon: bool = True
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def similar(self, query: str, k: int) -> list[dict]:
        args = {"query": query, "k": k, "include_self": False, "distinct": False}
        answer = self._daemon("similar", args)
        return answer if answer is not None else self._lines(["similar", query, "-k", str(k), "--json"])

    def morph(self, a: str, b: str) -> list[dict]:
        answer = self._daemon("morph", {"a": a, "b": b, "k": MORPH_K, "steps": None})
        return answer["steps"] if answer is not None else self._lines(["morph", a, b, "--k", str(MORPH_K), "--json"])

    def index(self, files: list[str], progress: Callable[[float, str], None], aborted: Callable[[], bool]) -> str:
        """Index `files`; returns a one-line summary. The daemon takes them at once and works in
        the background; the CLI runs in chunks, reporting progress after each."""
        if not files:
            raise StyleSearchFailed("this library has no covers to index")
        if self._daemon("enqueue", {"paths": files, "as_roots": False, "retry_failed": False}) is not None:
            return _IN_BACKGROUND.format(len(files))
        totals: Counter = Counter()
        for start in range(0, len(files), INDEX_CHUNK):
            if aborted():
                raise StyleSearchFailed(f"stopped after {start} of {len(files)} files")
            chunk = files[start:start + INDEX_CHUNK]
            summary = json.loads(self.run(["index", "--json", *chunk]).strip().splitlines()[-1])
            if summary.get("daemon"):  # a daemon started meanwhile, and took the work
                return _IN_BACKGROUND.format(len(files))
            totals.update({k: v for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)})
            progress((start + len(chunk)) / len(files), f"{start + len(chunk)} of {len(files)} files")
        counts = ", ".join(f"{totals[name]} {name}" for name in ("added", "updated", "moved", "unchanged", "failed")
                           if totals[name] or name in ("added", "unchanged"))
        return f"indexed {len(files)} file(s): {counts}"

    def _daemon(self, op: str, args: dict):
        """The daemon's answer, or None when it is off, absent, or serves other work."""
        if not self.use_daemon:
            return None
        try:
            return protocol.request(op, args)
        except protocol.DaemonUnavailable:
            return None
        except protocol.DaemonError as exc:
            raise StyleSearchFailed(explain(str(exc))) from None

    def _lines(self, argv: list[str]) -> list[dict]:
        return [json.loads(line) for line in self.run(argv).splitlines() if line.strip()]

    def run(self, argv: list[str]) -> str:
        """Run `stylesearch ARGV` in a clean environment; its stdout, or its one-line error."""
        executable = resolve_executable(self.executable, self.environ)
        try:
            done = subprocess.run([executable, *argv], env=clean_env(self.environ, self.use_daemon), text=True,
                                  stdin=subprocess.DEVNULL, capture_output=True, check=False)
        except OSError as exc:
            raise StyleSearchFailed(f"could not run {executable}: {exc.strerror or exc}") from None
        if done.returncode:
            last = (done.stderr.strip().splitlines() or [f"{executable} exited with status {done.returncode}"])[-1]
            raise StyleSearchFailed(explain(last))
        return done.stdout


def _runnable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)

