"""Is the held-out NMI held back by k-means, or by the embedding? Other clusterings, same vectors.

    .venv/bin/python bench/bench_clustering.py --real bench/out/corpus4/labels.csv \\
        --held-out-styles models/recipe/held_out_styles.txt --out bench/results/clustering.json

Why: the paper does not name its clustering algorithm (METHOD.md, 4.2.3); `stylesearch eval`
uses k-means, which favours round clusters of similar size, while the held-out styles range
from 12 to 120 images and a style may be a chain of looks rather than a ball. Each method
here clusters the model's embeddings into as many clusters as there are artists (Ward and
average-linkage agglomeration, spectral clustering on a k-nearest-neighbour graph), scored
like `eval` (ACC, ARI, NMI; mean and spread over `--seeds` where the method has a seed), on
the held-out styles and on the validation styles. The shipped map and head were fitted on
the validation styles (they are training styles), so their row shows how the same methods
do on styles the model has seen.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from bench_mix import held_out_split  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering  # noqa: E402

from stylesearch.embed import Embedder  # noqa: E402
from stylesearch.evaluate import clustering_scores  # noqa: E402
from stylesearch.imaging import load_image  # noqa: E402
from stylesearch.train.data import Example, load_examples  # noqa: E402

console = Console(highlight=False, width=160)
Method = Callable[[np.ndarray, int, int], np.ndarray]  # (vectors, clusters, seed) -> cluster of each vector


def methods(neighbours: list[int]) -> dict[str, tuple[Method, bool]]:
    """Each clustering by name, and whether its result depends on the seed."""
    found: dict[str, tuple[Method, bool]] = {
        "k-means (eval's)": (lambda x, k, s: KMeans(k, n_init=10, random_state=s).fit_predict(x), True),
        "Ward": (lambda x, k, s: AgglomerativeClustering(k, linkage="ward").fit_predict(x), False),
        "average linkage, cosine": (lambda x, k, s: AgglomerativeClustering(k, linkage="average", metric="cosine").fit_predict(x),
                                    False),
    }
    for n in neighbours:
        found[f"spectral, {n}-NN graph"] = (lambda x, k, s, n=n: SpectralClustering(
            k, affinity="nearest_neighbors", n_neighbors=n, n_init=10, random_state=s).fit_predict(x), True)
    return found


def embed(model: Path, examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """The model's fp32 embeddings of the examples that load, and their artists."""
    embedder = Embedder(model, device="cpu", precision="fp32")
    vectors, kept, failed = embedder.embed_all(examples, lambda e: load_image(e.path, embedder.size))
    for example, error in failed:
        console.print(f"skipped {example.path}: {error}", markup=False)
    return vectors.astype(np.float64), np.array([e.artist for e in kept])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="labels.csv of the real corpus")
    parser.add_argument("--held-out-styles", type=Path, required=True, help="styles never fitted on, one per line")
    parser.add_argument("--validation-styles", type=Path, default=ROOT / "models/recipe/validation_styles.txt",
                        help="training styles (seen by the shipped map and head), scored for comparison")
    parser.add_argument("--model", type=Path, default=ROOT / "models/stylesearch-default.pt")
    parser.add_argument("--skip-sources", default="iconsets", help="held-out sources left out (the 26 styles of the card)")
    parser.add_argument("--neighbours", default="5,10,20", help="graph sizes for spectral clustering")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True, help="results JSON")
    args = parser.parse_args()

    train, held = held_out_split(load_examples(args.real), args.held_out_styles)
    sets = {"held-out": [e for e in held if e.artist.split("/")[0] not in args.skip_sources.split(",")],
            "validation (seen)": held_out_split(train, args.validation_styles)[1]}
    found = methods([int(n) for n in args.neighbours.split(",")])
    results: dict = {"model": str(args.model)}
    table = Table("method", *(f"{name} {column}" for name in sets for column in ("ACC", "ARI", "NMI")), box=None)
    rows: dict[str, list[str]] = {name: [] for name in found}
    for set_name, examples in sets.items():
        vectors, artists = embed(args.model, examples)
        _, y = np.unique(artists, return_inverse=True)
        k = int(y.max()) + 1
        results[set_name] = {"images": len(y), "artists": k}
        for name, (cluster, seeded) in found.items():
            scores = [clustering_scores(y, cluster(vectors, k, seed)) for seed in range(args.seeds if seeded else 1)]
            mean, sd = 100 * np.mean(scores, 0), 100 * np.std(scores, 0)
            results[set_name][name] = {"ACC": round(mean[0], 2), "ARI": round(mean[1], 2), "NMI": round(mean[2], 2),
                                       "NMI sd": round(sd[2], 2), "runs": len(scores)}
            rows[name] += [f"{mean[0]:.2f}", f"{mean[1]:.2f}", f"{mean[2]:.2f}±{sd[2]:.2f}"]
    for name, cells in rows.items():
        table.add_row(name, *cells)
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
