"""scan -> embed -> catalog -> ANN: bring a library up to date with the files on disk.

Every result is committed to the catalog as it arrives (a crash loses at most the batch in
the model), and the ANN index is saved at the end with the catalog generation it reflects.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ImageLoadError
from ..imaging import load_image, open_regular
from . import scan
from .folder import Library


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    offline: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), this run's failures
    missing: list[str] = field(default_factory=list)  # paths given that do not exist

    def to_dict(self) -> dict:
        return asdict(self)


def file_hash(path: bytes) -> str:
    """Content identity for move/copy detection (BLAKE2b-128 of the whole file)."""
    with open_regular(path) as fh:
        try:
            return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
        except OSError as exc:
            raise ImageLoadError(f"read error: {exc.strerror or exc}") from None


def index_paths(
    library: Library,
    targets: list[str | bytes | os.PathLike],
    embedder,
    *,
    retry_failed: bool = False,
    rebuild: bool = False,
    as_roots: bool = True,
    save: bool = True,
    on_plan: Callable[[int], None] | None = None,
    on_file: Callable[[bytes], None] | None = None,
) -> Summary:
    """Index `targets` (files or folders) with `embedder` (a stylesearch.embed.Embedder).

    Folders given become library roots unless `as_roots` is false (the watcher passes
    changed sub-folders). `save=False` leaves saving the ANN index to the caller (the daemon
    saves on a timer); the library's in-memory index is kept current either way.
    `on_plan(n)` is told how many files need work, `on_file(path)` after each one (progress).
    """
    catalog = library.catalog
    info = embedder.info
    summary = Summary()
    with library.writer():
        library.use_model(info.model_id, info.path)
        ann = library.ann(embedder.dim, rebuild=rebuild)
        targets = [scan.normalise(t) for t in targets]
        roots = catalog.roots() + ([t for t in targets if os.path.isdir(t)] if as_roots else [])
        plan = scan.plan(catalog, targets, info.model_id, roots=roots, retry_failed=retry_failed)
        summary.missing = [os.fsdecode(p) for p in plan.missing]
        summary.unchanged = plan.unchanged
        summary.errors = [(os.fsdecode(p), why) for p, why in plan.unlisted]

        changes = AnnChanges()
        with catalog.transaction():
            for root in plan.roots if as_roots else ():
                catalog.add_root(root)
            for root, device in plan.devices.items():
                catalog.set_root_device(root, device)
            catalog.set_status([r.id for r in plan.offline], "offline")
            catalog.set_status([r.id for r in plan.back_online], "ok")
            for path, why in plan.unreadable:
                catalog.put(path, 0, 0, None, error=why)
                summary.errors.append((os.fsdecode(path), why))
            catalog.bump_generation()
            for row in plan.offline:
                changes.remove(row.id)
            for row in plan.back_online:
                changes.add(row.id, catalog.vector(row.id))
        changes.apply(ann)
        library.keep(ann)
        summary.offline = len(plan.offline)
        summary.failed = len(plan.unreadable)
        summary.unchanged += len(plan.back_online)

        known = catalog.hashes(info.model_id)
        vanished = {r.id: r for r in plan.vanished}

        def hash_or_load(job: scan.Job):
            job.hash = file_hash(job.path)
            return None if job.hash in known else load_image(job.path, embedder.size)

        if on_plan:
            on_plan(len(plan.jobs))
        pending = plan.jobs
        # Second pass: the few jobs whose reusable vector changed under them get embedded.
        for load in (hash_or_load, lambda job: load_image(job.path, embedder.size)):
            retry = []
            for job, vector, error in embedder.stream(pending, load):
                changes = AnnChanges()
                with catalog.transaction():
                    done = _record(catalog, changes, summary, job, vector, error, known, vanished, info.model_id)
                    catalog.bump_generation()
                changes.apply(ann)  # only after the commit: the index never holds what the catalog lacks
                library.keep(ann)
                if not done:
                    retry.append(job)
                elif on_file:
                    on_file(job.path)
            pending = retry

        changes = AnnChanges()
        with catalog.transaction():
            catalog.delete(vanished)
            catalog.bump_generation()
            for file_id in vanished:
                changes.remove(file_id)
        changes.apply(ann)
        summary.removed = len(vanished)
        library.keep(ann)
        if save:
            library.save_ann(ann)
    return summary


class AnnChanges:
    """Index updates collected inside a catalog transaction, applied once it committed."""

    def __init__(self) -> None:
        self.removed: list[int] = []
        self.added: list[tuple[int, np.ndarray]] = []

    def remove(self, file_id: int) -> None:
        self.removed.append(file_id)

    def add(self, file_id: int, vector: np.ndarray) -> None:
        self.added.append((file_id, vector))

    def apply(self, ann) -> None:
        ann.remove(np.array(self.removed, dtype=np.int64))
        if self.added:
            ann.add(np.array([i for i, _ in self.added]), np.stack([v for _, v in self.added]))


def _record(catalog, ann: AnnChanges, summary: Summary, job: scan.Job, vector, error, known, vanished, model_id: str) -> bool:
    """Write one job's outcome to the catalog and the ANN index, and count it. False when
    the vector it meant to reuse is gone (its source changed meanwhile): embed it then."""
    kind = "updated" if job.row else "added"
    if job.row and known.get(job.row.hash) == job.row.id and job.row.hash != job.hash:
        del known[job.row.hash]  # that row's old content is no longer a source to copy from
    if error is not None:
        catalog.put(job.path, job.size, job.mtime_ns, job.hash, error=error)
        if job.row:
            ann.remove(job.row.id)
        summary.failed += 1
        summary.errors.append((os.fsdecode(job.path), error))
        return True
    if vector is None:  # content already known: reuse its vector
        source = known.get(job.hash)
        if source is None:
            return False
        if source in vanished:  # the same file, moved: keep its row (and ANN label)
            del vanished[source]
            if job.row:
                catalog.delete([job.row.id])
                ann.remove(job.row.id)
            catalog.move(source, job.path, job.size, job.mtime_ns)
            summary.moved += 1
            return True
        if job.row and source == job.row.id and job.row.status == "ok":  # touched, not changed
            catalog.touch(source, job.size, job.mtime_ns)
            summary.unchanged += 1
            return True
        vector = catalog.vector(source)
        if vector is None:
            return False
    file_id = catalog.put(job.path, job.size, job.mtime_ns, job.hash, vector=vector, model_id=model_id)
    known.setdefault(job.hash, file_id)
    ann.add(file_id, vector)
    setattr(summary, kind, getattr(summary, kind) + 1)
    return True
