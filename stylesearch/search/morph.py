"""Style morph (paper 4.4.4, Table 6): works whose style moves step by step from A to B.

Each indexed work links to its k nearest neighbours (Euclidean on the style vectors); the morph is the
shortest path from A to B in that graph (scipy's Dijkstra). A and B may be outside the
library: they join the graph as temporary nodes linked to their k nearest works. The graph
is cached in the library folder and rebuilt only when the catalog generation or model
changes, so a morph at 100k works costs one Dijkstra, not a graph build.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from ..errors import StyleSearchError
from ..library.folder import Library
from .similar import query_vector

GRAPH_EF = 128  # neighbour search effort while building the graph (queries use more)
GRAPH_SLACK = 4  # extra neighbours asked for, for labels a concurrent commit made stale


@dataclass(frozen=True)
class Graph:
    ids: np.ndarray  # catalog id of node i
    neighbours: np.ndarray  # [n, k] node indices
    distances: np.ndarray  # [n, k] Euclidean distances
    build_seconds: float

    @property
    def k(self) -> int:
        return self.neighbours.shape[1]


@dataclass(frozen=True)
class Step:
    index: int
    path: str
    to_a: float
    to_b: float

    def to_dict(self) -> dict:
        return {"step": self.index, "path": self.path, "distance_to_a": round(self.to_a, 6), "distance_to_b": round(self.to_b, 6)}


def answer(steps: list[Step], graph: Graph) -> dict:
    """A morph as plain data: what the daemon sends and the CLI prints."""
    return {"steps": [s.to_dict() for s in steps],
            "graph": {"works": len(graph.ids), "k": graph.k, "build_seconds": round(graph.build_seconds, 3)}}


def build_graph(library: Library, k: int) -> Graph:
    started = time.perf_counter()
    ids, vectors = library.catalog.searchable(library.model_id or "")
    if len(ids) < 2:
        raise StyleSearchError("a morph needs at least two indexed works: run `stylesearch index PATH` first")
    ann = library.ann(vectors.shape[1])
    k = min(k, len(ids) - 1)
    with ann.lock:  # the daemon may be adding to the index meanwhile
        wanted = min(k + 1 + GRAPH_SLACK, ann.live)
        ann.index.set_ef(max(GRAPH_EF, wanted))
        labels, d2 = ann.index.knn_query(vectors, k=wanted)
    # The live index can differ from this catalog snapshot by the commit being applied now
    # (the daemon commits, then updates the index): labels it has that the snapshot lacks
    # are skipped, and a row left short of k neighbours is searched exactly.
    position = np.full(max(int(ids.max()), int(labels.max(initial=0))) + 1, -1, dtype=np.int64)
    position[ids] = np.arange(len(ids))
    neighbours, distances = np.empty((len(ids), k), np.int64), np.empty((len(ids), k), np.float32)
    for row, (found, dist) in enumerate(zip(labels, d2, strict=True)):
        keep = [(position[f], np.sqrt(max(d, 0))) for f, d in zip(found, dist, strict=True) if f != ids[row] and position[f] >= 0][:k]
        if len(keep) < k:
            exact = np.linalg.norm(vectors - vectors[row], axis=1)
            exact[row] = np.inf
            keep = [(p, exact[p]) for p in np.argsort(exact)[:k]]
        neighbours[row], distances[row] = [p for p, _ in keep], [d for _, d in keep]
    return Graph(ids, neighbours, distances, time.perf_counter() - started)


def cached_graph(library: Library, k: int) -> Graph:
    """The graph for the library's current vectors, from `<library>/graph-k{k}.npz` when that
    was built at the same catalog generation with the same model, else built and saved."""
    path = library.folder / f"graph-k{k}.npz"
    stamp = f"{library.model_id}|{library.catalog.generation}"
    try:
        with open(path, "rb") as fh, np.load(fh) as saved:  # (our handle: closed even if damaged)
            if str(saved["stamp"]) == stamp:
                return Graph(saved["ids"], saved["neighbours"], saved["distances"], float(saved["build_seconds"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # missing or damaged: rebuild
        pass
    graph = build_graph(library, k)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.npz")  # one per writer
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=graph.ids, neighbours=graph.neighbours, distances=graph.distances,
                     build_seconds=graph.build_seconds, stamp=stamp)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:  # a read-only library still answers, it just cannot cache
        with contextlib.suppress(OSError):  # (a read-only disk refuses even to unlink what is not there)
            tmp.unlink()
    return graph


def resample(path: list[int], cumulative: np.ndarray, steps: int) -> list[int]:
    """`steps` nodes of `path` (ends included) at evenly spaced distance along it."""
    if steps >= len(path):
        return path
    targets = np.linspace(0, cumulative[-1], steps)
    chosen = sorted({int(np.abs(cumulative - t).argmin()) for t in targets} | {0, len(path) - 1})
    return [path[i] for i in chosen]


def morph(
    library: Library,
    a: str | os.PathLike,
    b: str | os.PathLike,
    *,
    k: int = 5,
    steps: int | None = None,
    model: Path | None = None,
    make_embedder: Callable,
) -> tuple[list[Step], Graph]:
    """The shortest style path from A to B through the k-NN graph of the library."""
    if k < 1:
        raise StyleSearchError("--k must be at least 1")
    if steps is not None and steps < 2:
        raise StyleSearchError("--steps must be at least 2 (A and B)")
    va, id_a = query_vector(library, a, model, make_embedder)
    vb, id_b = query_vector(library, b, model, make_embedder)
    for _ in range(3):  # the daemon may change the library between the graph and the answer: try again
        graph = cached_graph(library, k)
        path, distances = _shortest_path(library, graph, (va, id_a), (vb, id_b))
        if steps:
            path = resample(path, distances[path], steps)
        found = _steps(library, graph, path, (os.path.abspath(os.fsdecode(a)), va), (os.path.abspath(os.fsdecode(b)), vb))
        if found is not None:
            return found, graph
    raise StyleSearchError("the library kept changing during the morph; try again")


def _shortest_path(library: Library, graph: Graph, a: tuple, b: tuple) -> tuple[list[int], np.ndarray]:
    """Nodes from A to B (graph nodes, or n and n+1 for works outside it) and the distances
    from A along the graph. A and B are (vector, catalog id or None)."""
    n = len(graph.ids)
    position = {int(i): p for p, i in enumerate(graph.ids)}
    rows = [np.repeat(np.arange(n), graph.k)]
    cols = [graph.neighbours.ravel()]
    weights = [np.maximum(graph.distances.ravel(), 1e-9)]  # sparse graphs drop zero-weight edges
    ends, ann = [], None
    for node, (vector, file_id) in enumerate((a, b), start=n):
        if file_id is not None and file_id in position:
            ends.append(position[file_id])
            continue
        ann = ann or library.ann(len(vector))  # only outside works need the index loaded
        found, dist = ann.query(vector, graph.k + GRAPH_SLACK)  # an outside work: a temporary node
        links = [(position[int(f)], d) for f, d in zip(found, dist, strict=True) if int(f) in position][: graph.k]  # not newer works
        rows.append(np.full(len(links), node))
        cols.append(np.array([p for p, _ in links], dtype=np.int64))
        weights.append(np.maximum([d for _, d in links], 1e-9).astype(np.float32))
        ends.append(node)
    row, col, weight = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    matrix = csr_matrix((weight, (row, col)), shape=(n + 2, n + 2))
    distances, predecessors = dijkstra(matrix, directed=False, indices=ends[0], return_predecessors=True)
    if not np.isfinite(distances[ends[1]]):
        parts = connected_components(matrix, directed=False)[0] - (2 - sum(e >= n for e in ends))
        raise StyleSearchError(
            f"no style path from A to B: at --k {graph.k} the library's graph falls into {parts} separate groups; "
            f"try a larger --k (e.g. --k {graph.k * 2})"
        )
    path = [ends[1]]
    while path[-1] != ends[0]:
        path.append(int(predecessors[path[-1]]))
    path.reverse()
    return path, distances


def _steps(library: Library, graph: Graph, path: list[int], a: tuple, b: tuple) -> list[Step] | None:
    """The path as named steps; None if a work on it left the library since the graph was
    built. A and B are (name, vector): the names of ends outside the graph."""
    n = len(graph.ids)
    names = library.catalog.ok_paths([int(graph.ids[p]) for p in path if p < n])
    (name_a, va), (name_b, vb) = a, b
    result = []
    for i, node in enumerate(path):
        if node >= n:  # an end outside the graph
            name, vector = (name_a, va) if node == path[0] else (name_b, vb)
        else:
            file_id = int(graph.ids[node])
            vector = va if node == path[0] else vb if node == path[-1] else library.catalog.vector(file_id)
            if file_id not in names or vector is None:
                return None
            name = os.fsdecode(names[file_id])
        result.append(Step(i, name, float(np.linalg.norm(vector - va)), float(np.linalg.norm(vector - vb))))
    return result
