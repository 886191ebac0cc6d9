"""Morph at scale: graph build time and per-morph latency at 100k indexed works.

Vectors are synthetic (256-d, 2,000 overlapping Gaussian "styles": structure, but one
connected continuum, as real embeddings); 40 of the works are real files so the endpoints go through the same code
as a user's query. Target: <= 200 ms per morph once the graph is built.

    .venv/bin/python bench/bench_morph.py [--n 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from stylesearch.library.folder import Library  # noqa: E402
from stylesearch.model.locate import resolve_model_path  # noqa: E402
from stylesearch.search.morph import cached_graph, morph  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2000, 256)).astype(np.float32) * 0.3  # overlapping, like a continuum of styles
    vectors = centres[rng.integers(0, len(centres), args.n)] + rng.normal(size=(args.n, 256)).astype(np.float32)
    work = Path(tempfile.mkdtemp(prefix="bench-morph-", dir=ROOT / "bench" / "out"))
    real = []
    for i in range(40):
        path = work / "files" / f"w{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i, i, i)).save(path)
        real.append(path)
    with Library(work / "lib", create=True) as lib:
        lib.use_model("synthetic-1-000000000000", resolve_model_path(None))
        started = time.perf_counter()
        with lib.catalog.transaction():
            for i, vector in enumerate(vectors):
                if i < len(real):
                    st = real[i].stat()
                    lib.catalog.put(os.fsencode(real[i]), st.st_size, st.st_mtime_ns, f"h{i}", vector=vector,
                                    model_id=lib.model_id)
                else:
                    lib.catalog.put(f"/synthetic/{i}.png".encode(), 1, 1, f"h{i}", vector=vector, model_id=lib.model_id)
            lib.catalog.bump_generation()
        print(f"catalog: {args.n} rows in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        lib.save_ann(lib.ann())
        print(f"HNSW index: built and saved in {time.perf_counter() - started:.1f} s")
        graph = cached_graph(lib, args.k)
        print(f"k-NN graph (k={args.k}): built in {graph.build_seconds:.1f} s")
        started = time.perf_counter()
        cached_graph(lib, args.k)
        print(f"k-NN graph: loaded from cache in {(time.perf_counter() - started) * 1000:.0f} ms")
        no_model = lambda _path: (_ for _ in ()).throw(AssertionError("indexed endpoints need no model"))  # noqa: E731
        times, lengths = [], []
        for q in range(args.queries):
            a, b = real[q % 40], real[(q * 7 + 3) % 40]
            started = time.perf_counter()
            steps, _ = morph(lib, a, b, k=args.k, make_embedder=no_model)
            times.append((time.perf_counter() - started) * 1000)
            lengths.append(len(steps))
        print(f"morph, indexed endpoints, {args.queries} pairs: median {statistics.median(times):.0f} ms, "
              f"max {max(times):.0f} ms, path length median {statistics.median(lengths):.0f}  (target <= 200 ms)")


if __name__ == "__main__":
    main()
