"""A library folder: catalog + ANN index + writer lock, and the rules that tie them.

    <library>/catalog.sqlite3   source of truth (WAL)
    <library>/index.hnsw(.json) derived; rebuilt when stale, damaged or from another model
    <library>/lock              one writer at a time (readers never wait)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StyleSearchError
from .ann import AnnIndex
from .catalog import Catalog
from .scan import is_under, normalise


class Library:
    def __init__(self, folder: Path, *, create: bool = False) -> None:
        self.folder = Path(folder).expanduser()
        if not (self.folder / "catalog.sqlite3").is_file():
            if not create:
                raise StyleSearchError(f"no library at {self.folder}: run `stylesearch index PATH` first")
            try:
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise StyleSearchError(f"cannot create library folder {self.folder}: {exc.strerror or exc}") from None
        # On a read-only file system nothing can change the catalog: readers open it as such
        # (SQLite could not create its WAL index there), writers get a clear refusal.
        self.read_only = bool(os.statvfs(self.folder).f_flag & os.ST_RDONLY)
        try:
            self.catalog = Catalog(self.folder / "catalog.sqlite3", read_only=self.read_only)
        except Exception as exc:  # noqa: BLE001 - sqlite3 raises several types for a bad file
            raise StyleSearchError(f"cannot open catalog in {self.folder}: {exc}{_disk_hint(self.folder)}") from None
        self.ann_path = self.folder / "index.hnsw"
        self._ann: AnnIndex | None = None  # in memory, valid for _ann_stamp
        self._ann_stamp: tuple | None = None
        self._writer_depth = 0
        self._ann_lock = threading.RLock()

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the library's write lock (non-blocking: a second writer gets a clear error).
        Re-entrant for this object, so the daemon can hold it for its whole life."""
        if self.read_only:
            raise StyleSearchError(f"the library folder {self.folder} is on a read-only file system: "
                                   "searching works, indexing and forgetting need it writable")
        if self._writer_depth:
            self._writer_depth += 1
            try:
                yield
            finally:
                self._writer_depth -= 1
            return
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StyleSearchError(f"another stylesearch process is updating {self.folder}; try again when it ends "
                                       "(if the daemon runs, it holds the library: `stylesearch daemon stop` first)") from None
            self._writer_depth = 1
            yield
        finally:
            self._writer_depth = 0
            os.close(fd)

    # --- which model the library's vectors come from -------------------------------
    @property
    def model_id(self) -> str | None:
        return self.catalog.get_meta("model_id")

    @staticmethod
    def _model_file(model_path: Path) -> str | None:
        """Path, size and mtime of a model file: if these match, so does its id."""
        try:
            st = model_path.stat()
        except OSError:
            return None
        return f"{model_path}|{st.st_size}|{st.st_mtime_ns}"

    def known_model_id(self, model_path: Path) -> str | None:
        """The id of `model_path` if it is the file the library was last indexed with,
        answered without loading torch."""
        stamp = self._model_file(model_path)
        return self.model_id if stamp and self.catalog.get_meta("model_file") == stamp else None

    def use_model(self, model_id: str, model_path: Path) -> bool:
        """Record the model about to write vectors; True if it differs from the last one
        (its vectors then leave the index until re-embedded: models are never mixed)."""
        changed = self.model_id != model_id
        with self.catalog.transaction():
            self.catalog.set_meta("model_id", model_id)
            self.catalog.set_meta("model_file", self._model_file(model_path) or "")
            if changed:
                self.catalog.bump_generation()
        return changed

    # --- the ANN index ----------------------------------------------------------------
    def _stamp(self) -> tuple:
        return self.model_id, self.catalog.generation

    def ann(self, dim: int | None = None, *, rebuild: bool = False) -> AnnIndex:
        """The index for the catalog as it is: kept in memory, else the saved file if it
        matches, else built from the catalog."""
        with self._ann_lock:  # one build at a time; a query's build never overwrites a writer's index
            stamp = self._stamp()
            if not rebuild and self._ann is not None and self._ann_stamp is not None and self._ann_stamp[0] == stamp[0]:
                # While this object holds the write lock it is the only writer, and it updates
                # the in-memory index right after each commit: that copy is the truth (re-reading
                # the generation here would race with those commits). Others check freshness.
                if self._writer_depth or self._ann_stamp == stamp:
                    return self._ann
            model_id, generation = stamp
            dim = dim or self.catalog.vector_dim() or 1
            saved = None if rebuild or not model_id else AnnIndex.load(self.ann_path, model_id=model_id, generation=generation, dim=dim)
            if saved is None:
                ids, vectors = self.catalog.searchable(model_id or "")
                saved = AnnIndex.build(ids, vectors, dim)
            self._ann, self._ann_stamp = saved, stamp
            return saved

    def keep(self, ann: AnnIndex) -> None:
        """Say that `ann` now reflects the catalog as committed (a writer updated both)."""
        with self._ann_lock:
            self._ann, self._ann_stamp = ann, self._stamp()

    def save_ann(self, ann: AnnIndex) -> None:
        ann.save(self.ann_path, model_id=self.model_id, generation=self.catalog.generation)
        self.keep(ann)

    def index_facts(self) -> dict:
        """What the saved index says of itself (empty if there is none), plus its size and
        whether it is fresh: saved at the catalog's generation, at the size it was saved
        with (a sidecar from before sizes were recorded vouches for any size)."""
        facts = AnnIndex.facts(self.ann_path)
        if not facts or not self.ann_path.is_file():
            return {}
        size = self.ann_path.stat().st_size
        return {**facts, "bytes": size,
                "fresh": facts.get("generation") == self.catalog.generation and facts.get("saved_bytes", size) == size}

    def forget(self, paths: Iterable[str | os.PathLike]) -> int:
        """Drop files (or folders and all below) from catalog and index; files on disk stay.
        Roots at or below a forgotten path are no longer watched; files below a root that
        stays are found again by its next scan. Returns how many files were forgotten."""
        with self.writer():
            ann = self.ann()
            forgotten = 0
            with self.catalog.transaction():
                for target in map(normalise, paths):
                    ids = [r.id for r in self.catalog.rows_at(target)]
                    self.catalog.delete(ids)
                    ann.remove(ids)
                    forgotten += len(ids)
                    for root in self.catalog.roots():
                        if is_under(root, target):
                            self.catalog.remove_root(root)
                self.catalog.bump_generation()
            self.save_ann(ann)
        return forgotten


def _disk_hint(folder: Path) -> str:
    """Why SQLite's 'disk I/O error' or 'unable to open' happened, when the disk is full."""
    free = shutil.disk_usage(folder).free
    return f" (the disk is full: {free >> 10} KiB free)" if free < 1 << 20 else ""
