"""`similar`: the works whose style vector is nearest to a query's, by Euclidean distance.

A query that is already indexed and unchanged is answered from its stored vector, so the
common case never imports torch; any other file is embedded with the library's model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ImageLoadError, StyleSearchError
from ..imaging import load_image
from ..library.folder import Library
from ..library.scan import normalise
from ..model.locate import resolve_model_path

DUPLICATE_BITS = 10  # of 64 dHash bits: re-encodes differ by ~0-4, other works by ~20-40


@dataclass(frozen=True)
class Hit:
    rank: int
    distance: float
    path: str

    def to_dict(self) -> dict:
        return {"rank": self.rank, "distance": round(self.distance, 6), "path": self.path}


def query_vector(library: Library, query: str | os.PathLike, model: Path | None, make_embedder: Callable) -> tuple[np.ndarray, int | None]:
    """The query's vector and, if it is an indexed file, its catalog id."""
    path = normalise(query)
    if not os.path.exists(path):
        raise StyleSearchError(f"query not found: {os.fsdecode(path)}")
    model_path = resolve_model_path(model)
    row = library.catalog.row(path)
    known_model = library.known_model_id(model_path)
    if row and row.status == "ok" and known_model and row.model_id == known_model:
        st = os.stat(path)
        if (st.st_size, st.st_mtime_ns) == (row.size, row.mtime_ns):
            vector = library.catalog.vector(row.id)
            if vector is not None:
                return vector, row.id
    embedder = make_embedder(model_path)
    if library.model_id and embedder.info.model_id != library.model_id:
        raise StyleSearchError(
            f"the library was indexed with model {library.model_id}, not {embedder.info.model_id}: "
            "run `stylesearch index` with this model (or pick the library's model with --model)"
        )
    try:
        return embedder.embed_file(path), (row.id if row else None)
    except ImageLoadError as exc:  # name the file: morph has two queries
        raise ImageLoadError(f"{os.fsdecode(path)}: {exc}") from None


def dhash(path: str | bytes | os.PathLike) -> int | None:
    """64-bit difference hash (brightness gradients of a 9x8 thumbnail): equal or within a
    few bits for the same picture re-encoded, resized or slightly cropped."""
    try:
        grey = load_image(path, 64).convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    except ImageLoadError:
        return None
    px = np.asarray(grey, dtype=np.int16)
    return int.from_bytes(np.packbits(px[:, 1:] > px[:, :-1]).tobytes(), "big")


def near_duplicate(a: int | None, b: int | None) -> bool:
    return a is not None and b is not None and (a ^ b).bit_count() <= DUPLICATE_BITS


def similar(
    library: Library,
    query: str | os.PathLike,
    *,
    k: int = 10,
    include_self: bool = False,
    distinct: bool = False,
    model: Path | None = None,
    make_embedder: Callable,
) -> list[Hit]:
    """The k works nearest in style to `query` (any image or archive, indexed or not).
    `distinct` drops near-duplicates of the query and of earlier results (reprints, rescans),
    so the list shows other works in the same style."""
    if k < 1:
        raise StyleSearchError("-k must be at least 1")
    vector, self_id = query_vector(library, query, model, make_embedder)
    ann = library.ann(len(vector))
    if ann.live == 0:
        raise StyleSearchError("the library has no indexed works yet: run `stylesearch index PATH` first")
    # Ask for extra: the query itself and rows changed since the index was saved drop out;
    # with `distinct` so do near-duplicates, and the search goes deeper until k remain or the
    # library is exhausted (a collection of reprints must not come back short).
    want = min((4 * k + 16) if distinct else k + 1 + max(8, k // 4), ann.live)
    fingerprints = {self_id: dhash(query)} if distinct else {}
    while True:
        hits = _hits(library, *ann.query(vector, want), k, self_id, include_self, fingerprints)
        if len(hits) == k or not distinct or want >= ann.live:
            return hits
        want = min(4 * want, ann.live)


def _hits(library: Library, ids: np.ndarray, distances: np.ndarray, k: int, self_id: int | None, include_self: bool,
          fingerprints: dict[int | None, int | None]) -> list[Hit]:
    """The first k listable candidates, nearest first. `fingerprints` is empty without
    `distinct`; with it, it holds the query's under `self_id` (None for a query outside the
    library) and caches the others as they are computed, and each candidate that is a
    near-duplicate of the query or of a work listed before it is left out."""
    paths = library.catalog.ok_paths(ids)
    listed = [fingerprints[self_id]] if fingerprints else []
    hits: list[Hit] = []
    for file_id, distance in zip(ids, distances, strict=True):
        if file_id not in paths or (file_id == self_id and not include_self):
            continue
        if fingerprints and file_id != self_id:  # the query itself, when listed, is no duplicate of itself
            if file_id not in fingerprints:
                fingerprints[file_id] = dhash(paths[file_id])
            if any(near_duplicate(fingerprints[file_id], seen) for seen in listed):
                continue
            listed.append(fingerprints[file_id])
        hits.append(Hit(len(hits) + 1, float(distance), os.fsdecode(paths[file_id])))
        if len(hits) == k:
            break
    return hits
