"""The SQLite catalog: the source of truth for every file, its status and its vector.

Paths are stored as BLOBs of their OS bytes, so names that are not valid UTF-8 survive.
`generation` counts changes to the set of searchable vectors; the ANN index records the
generation it was built at, which is how a stale or half-saved index is detected.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = "1"
STATUSES = ("ok", "failed", "offline")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots (path BLOB PRIMARY KEY, added REAL NOT NULL, device INTEGER);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'offline')),
    error TEXT,
    model_id TEXT,
    vector BLOB,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_hash ON files (hash);
"""


@dataclass(frozen=True)
class FileRow:
    id: int
    path: bytes
    size: int
    mtime_ns: int
    hash: str | None
    status: str
    error: str | None
    model_id: str | None


def under(prefix: bytes) -> tuple[bytes, bytes]:
    """BLOB range [lo, hi) holding every path strictly below folder `prefix`."""
    base = prefix.rstrip(b"/") + b"/"
    return base, base[:-1] + b"0"  # '0' is the byte after '/'


class Catalog:
    """One connection to `<library>/catalog.sqlite3` (WAL: readers never block the writer)."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        if read_only:  # a read-only file system: nothing can change the file, so no WAL index is needed
            self.db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?immutable=1", uri=True, isolation_level=None,
                                      check_same_thread=False)
            return
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)  # idempotent (IF NOT EXISTS)
        with self.transaction():
            if self.get_meta("schema_version") is None:
                self.set_meta("schema_version", SCHEMA_VERSION)
                self.set_meta("generation", "0")
            if "device" not in {column[1] for column in self.db.execute("PRAGMA table_info(roots)")}:
                self.db.execute("ALTER TABLE roots ADD COLUMN device INTEGER")  # catalogs made before 2026-11-28

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; IMMEDIATE so two writers queue instead of deadlocking."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- meta -------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def bump_generation(self) -> None:
        self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")

    # --- roots ------------------------------------------------------------------------
    def add_root(self, path: bytes) -> None:
        """Watch a folder; its file system now is the baseline `root_devices` starts from."""
        try:
            device = os.stat(path).st_dev
        except OSError:
            device = None
        self.db.execute("INSERT OR IGNORE INTO roots (path, added, device) VALUES (?, ?, ?)", (path, time.time(), device))

    def remove_root(self, path: bytes) -> None:
        self.db.execute("DELETE FROM roots WHERE path=?", (path,))

    def roots(self) -> list[bytes]:
        return [r[0] for r in self.db.execute("SELECT path FROM roots ORDER BY path")]

    def root_devices(self) -> dict[bytes, int]:
        """Each root's file system (st_dev) when it was added or last seen reachable: how an
        emptied folder is told from an unmounted drive's empty mount point."""
        try:
            return dict(self.db.execute("SELECT path, device FROM roots WHERE device IS NOT NULL"))
        except sqlite3.OperationalError:  # an older catalog on a read-only disk: not recorded
            return {}

    def set_root_device(self, path: bytes, device: int) -> None:
        self.db.execute("UPDATE roots SET device=? WHERE path=?", (device, path))

    # --- files ------------------------------------------------------------------------
    _COLS = "id, path, size, mtime_ns, hash, status, error, model_id"

    def row(self, path: bytes) -> FileRow | None:
        found = self.db.execute(f"SELECT {self._COLS} FROM files WHERE path=?", (path,)).fetchone()
        return FileRow(*found) if found else None

    def rows_at(self, path: bytes) -> list[FileRow]:
        """The row for file `path`, or every row below folder `path`."""
        lo, hi = under(path)
        query = f"SELECT {self._COLS} FROM files WHERE path=? OR (path>=? AND path<?)"
        return [FileRow(*r) for r in self.db.execute(query, (path, lo, hi))]

    def vector(self, file_id: int) -> np.ndarray | None:
        found = self.db.execute("SELECT vector FROM files WHERE id=?", (file_id,)).fetchone()
        return np.frombuffer(found[0], dtype=np.float32).copy() if found and found[0] is not None else None

    def vector_dim(self) -> int | None:
        found = self.db.execute("SELECT length(vector) FROM files WHERE vector IS NOT NULL LIMIT 1").fetchone()
        return found[0] // 4 if found else None

    def hashes(self, model_id: str) -> dict[str, int]:
        """content hash -> id of a row holding a vector from `model_id` (for move/copy reuse)."""
        query = "SELECT hash, id FROM files WHERE model_id=? AND vector IS NOT NULL AND hash IS NOT NULL"
        return dict(self.db.execute(query, (model_id,)))

    def put(
        self,
        path: bytes,
        size: int,
        mtime_ns: int,
        file_hash: str | None,
        *,
        vector: np.ndarray | None = None,
        model_id: str | None = None,
        error: str | None = None,
    ) -> int:
        """Insert or replace the row for `path` (ok with a vector, or failed with an error);
        an existing row keeps its id, which is also its ANN label."""
        status = "failed" if error is not None else "ok"
        blob = None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
        self.db.execute(
            """INSERT INTO files (path, size, mtime_ns, hash, status, error, model_id, vector, indexed_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,
                 hash=excluded.hash, status=excluded.status, error=excluded.error,
                 model_id=excluded.model_id, vector=excluded.vector, indexed_at=excluded.indexed_at""",
            (path, size, mtime_ns, file_hash, status, error, model_id if blob else None, blob, time.time()),
        )
        return self.db.execute("SELECT id FROM files WHERE path=?", (path,)).fetchone()[0]

    def move(self, file_id: int, path: bytes, size: int, mtime_ns: int) -> None:
        self.db.execute("UPDATE files SET path=?, size=?, mtime_ns=?, status='ok' WHERE id=?", (path, size, mtime_ns, file_id))

    def touch(self, file_id: int, size: int, mtime_ns: int) -> None:
        self.db.execute("UPDATE files SET size=?, mtime_ns=? WHERE id=?", (size, mtime_ns, file_id))

    def set_status(self, ids: Iterable[int], status: str) -> None:
        self.db.executemany("UPDATE files SET status=? WHERE id=?", [(status, i) for i in ids])

    def delete(self, ids: Iterable[int]) -> None:
        self.db.executemany("DELETE FROM files WHERE id=?", [(i,) for i in ids])

    def searchable(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every ok row embedded by `model_id`: what the ANN index must hold."""
        query = "SELECT id, vector FROM files WHERE status='ok' AND model_id=? AND vector IS NOT NULL"
        rows = self.db.execute(query, (model_id,)).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return ids, vectors

    def ok_paths(self, ids: Iterable[int]) -> dict[int, bytes]:
        """id -> path for the ids that are still searchable (ok); others are dropped."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self.db.execute(f"SELECT id, path FROM files WHERE status='ok' AND id IN ({marks})", ids))

    def ok_paths_under(self, folder: bytes) -> dict[int, bytes]:
        """id -> path of the searchable files at or below `folder`."""
        lo, hi = under(folder)
        query = "SELECT id, path FROM files WHERE status='ok' AND (path=? OR (path>=? AND path<?))"
        return dict(self.db.execute(query, (folder, lo, hi)))

    def counts(self) -> dict[str, int]:
        found = dict(self.db.execute("SELECT status, COUNT(*) FROM files GROUP BY status"))
        return {s: found.get(s, 0) for s in STATUSES}

    def failed(self) -> list[tuple[bytes, str]]:
        return list(self.db.execute("SELECT path, error FROM files WHERE status='failed' ORDER BY path"))
