"""digiKam's SQLite database (`digikam4.db`): where it is, which folders and images it shows,
and writing tags into it while digiKam is closed.

Reading never changes the file: the connection is opened read-only (`mode=ro` URI). The
tables and enum values are digiKam's (AlbumRoots, Albums, Images, Tags, ImageTags;
tests/data holds the schema from a real digiKam 7.9 run).
"""

from __future__ import annotations

import configparser
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import StyleSearchError

DB_NAME = "digikam4.db"
VISIBLE, IMAGE = 1, 1  # Images.status "Visible" and Images.category "Image" in digiKam
LOCATION_HIDDEN = 2  # AlbumRoots.status: the user hid this collection
NETWORK = 3  # AlbumRoots.type: network share, found by its mount path(s)


@dataclass(frozen=True)
class Collection:
    """One digiKam collection (an AlbumRoots row) and the folder it is on this machine."""

    id: int
    label: str
    path: str | None  # None: its volume is not mounted or cannot be found
    hidden: bool

    @property
    def available(self) -> bool:
        return not self.hidden and self.path is not None and os.path.isdir(self.path)


def config_files() -> list[Path]:
    """Where digiKam keeps its settings: the XDG config dir, then the Flatpak's."""
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [config / "digikamrc", Path.home() / ".var/app/org.kde.digikam/config/digikamrc"]


def find_db() -> Path:
    """digikam4.db as digiKam's settings name it ([Database Settings] Database Name)."""
    for rc in config_files():
        if not rc.is_file():
            continue
        settings = _database_settings(rc)
        if settings.get("database type", "QSQLITE") != "QSQLITE":
            raise StyleSearchError(f"{rc}: digiKam uses a {settings['database type']} database; only SQLite is supported")
        name = settings.get("database name")
        if name:
            path = Path(os.path.expandvars(name)).expanduser()
            path = path / DB_NAME if path.is_dir() or not path.suffix else path
            if path.is_file():
                return path
    raise StyleSearchError("digiKam's database was not found; give --db PATH to digikam4.db "
                           "(digiKam shows its folder in Settings > Configure digiKam > Database)")


def _database_settings(rc: Path) -> dict[str, str]:
    """[Database Settings] of a KConfig file; KConfig's `key[$e]=` (expand) suffix dropped."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    try:
        parser.read_string(rc.read_text(encoding="utf-8", errors="replace"))
    except configparser.Error as exc:
        raise StyleSearchError(f"cannot read digiKam settings {rc}: {exc.message.splitlines()[0]}") from None
    if not parser.has_section("Database Settings"):
        return {}
    return {key.split("[")[0].strip(): value for key, value in parser.items("Database Settings")}


def connect_readonly(db: Path) -> sqlite3.Connection:
    """A read-only connection: digiKam's file is never written, even by accident."""
    if not Path(db).is_file():
        raise StyleSearchError(f"no digiKam database at {db}")
    uri = "file:" + urllib.parse.quote(str(Path(db).resolve())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        conn.execute("SELECT id, label, status, type, identifier, specificPath FROM AlbumRoots LIMIT 0")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StyleSearchError(f"{db} is not a digiKam database ({exc})") from None
    return conn


def collections(conn: sqlite3.Connection) -> list[Collection]:
    """Every collection with the folder it resolves to here."""
    rows = conn.execute("SELECT id, label, status, type, identifier, specificPath FROM AlbumRoots ORDER BY id")
    return [Collection(id_, label or "", resolve_root(kind, identifier or "", specific or "/"), status == LOCATION_HIDDEN)
            for id_, label, status, kind, identifier, specific in rows]


def resolve_root(kind: int, identifier: str, specific_path: str) -> str | None:
    """The folder of an album root, as digiKam finds it: a volume (by UUID, label or mount
    path) plus the path on that volume, a plain path, or the first mounted network path."""
    url = urllib.parse.urlsplit(identifier)
    query: dict[str, list[str]] = {}  # as QUrlQuery reads it: '+' is a plus, not a space
    for pair in url.query.split("&"):
        key, _, value = pair.partition("=")
        query.setdefault(key, []).append(urllib.parse.unquote(value))
    if kind == NETWORK or url.scheme == "networkshareid":
        mounted = [p for p in query.get("mountpath", []) if os.path.isdir(p) and os.listdir(p)]
        return (mounted[0].rstrip("/") or "/") if mounted else None
    if url.scheme != "volumeid":
        return None
    if "path" in query:
        return query["path"][0].rstrip("/") or "/"
    if "uuid" in query:
        mount = _mount_point(Path("/dev/disk/by-uuid") / query["uuid"][0].lower())
    elif "label" in query:
        mount = _mount_point(Path("/dev/disk/by-label") / query["label"][0])
    elif "mountpath" in query:
        mount = query["mountpath"][0]
    else:
        return None
    if mount is None:
        return None
    return (mount.rstrip("/") + specific_path).rstrip("/") or "/"


def _mount_point(device_link: Path) -> str | None:
    """Where the block device behind a /dev/disk/by-* link is mounted (first mount wins)."""
    try:
        device = os.path.realpath(device_link, strict=True)
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                source = fields[fields.index("-") + 2]
                if os.path.realpath(source) == device:
                    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])  # \040 is a space
    except (OSError, ValueError, IndexError):
        pass
    return None


def image_paths(conn: sqlite3.Connection, roots: list[Collection]) -> list[str]:
    """The images digiKam shows (status Visible, category Image) in available collections."""
    by_id = {c.id: c.path for c in roots if c.available}
    query = ("SELECT a.albumRoot, a.relativePath, i.name FROM Images i JOIN Albums a ON i.album = a.id "
             "WHERE i.status = ? AND i.category = ? ORDER BY a.albumRoot, a.relativePath, i.name")
    return [os.path.join(by_id[root] + (relative if relative != "/" else ""), name)
            for root, relative, name in conn.execute(query, (VISIBLE, IMAGE)) if root in by_id]


def digikam_running() -> bool:
    """Whether a digiKam process runs on this machine (it keeps tags cached and would not see,
    or would overwrite, changes made behind its back)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "comm").read_text().strip() == "digikam":
                return True
        except OSError:
            continue
    return False


def write_tags(db: Path, tags: dict[str, list[tuple[str, ...]]]) -> tuple[Path, int]:
    """Assign hierarchical tags to images directly in digikam4.db: refused while digiKam runs,
    after a backup copy, in one short transaction. Returns (backup, tags assigned)."""
    if digikam_running():
        raise StyleSearchError("digiKam is running: close it first, or tag without --write-db (XMP sidecars only; "
                               "then Item > Reread Metadata From Files in digiKam)")
    with closing(connect_readonly(db)) as conn:
        roots = [c for c in collections(conn) if c.path is not None]
    backup = db.with_name(f"{db.name}.stylesearch-backup-{time.strftime('%Y%m%d-%H%M%S')}")
    with closing(connect_readonly(db)) as source, closing(sqlite3.connect(backup)) as copy:
        source.backup(copy)
    assigned = 0
    with _writing(db) as conn:
        for image, keywords in tags.items():
            image_id = _image_id(conn, roots, os.path.abspath(image))
            if image_id is None:
                raise StyleSearchError(f"not in digiKam's database: {image}")
            for words in keywords:
                tag_id = _tag_id(conn, words)
                assigned += conn.execute("INSERT OR IGNORE INTO ImageTags (imageid, tagid) VALUES (?, ?)",
                                         (image_id, tag_id)).rowcount
    return backup, assigned


@contextmanager
def _writing(db: Path) -> Iterator[sqlite3.Connection]:
    """One IMMEDIATE transaction (fails at once if another program holds the file), committed
    at the end or rolled back on any error."""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def _image_id(conn: sqlite3.Connection, roots: list[Collection], path: str) -> int | None:
    for root in roots:
        if path.startswith(root.path.rstrip("/") + "/"):
            folder, name = os.path.split(path)
            relative = folder[len(root.path.rstrip("/")):] or "/"
            found = conn.execute("SELECT i.id FROM Images i JOIN Albums a ON i.album = a.id "
                                 "WHERE a.albumRoot = ? AND a.relativePath = ? AND i.name = ?",
                                 (root.id, relative, name)).fetchone()
            if found:
                return found[0]
    return None


def _tag_id(conn: sqlite3.Connection, words: tuple[str, ...]) -> int:
    """The id of tag a/b/c, creating missing levels (digiKam's triggers keep TagsTree)."""
    parent = 0
    for name in words:
        found = conn.execute("SELECT id FROM Tags WHERE pid = ? AND name = ?", (parent, name)).fetchone()
        parent = found[0] if found else conn.execute("INSERT INTO Tags (pid, name) VALUES (?, ?)", (parent, name)).lastrowid
    return parent
