"""Would rendering and reading the drawings at a higher resolution help? Measured on the real corpus.

    models/recipe/build_corpus.py --out bench/out/corpus256 --sources emoji,chess --side 256
    models/recipe/build_corpus.py --out bench/out/corpus256 --sources iconsets --subjects 36 --side 256
    .venv/bin/python bench/bench_resolution.py --low bench/out/corpus4 --high bench/out/corpus256 \\
        --model bench/out/gpu2/a-paper-mixed.pt --out bench/results/resolution.json

The same drawings rendered at two sizes (matched by their path in the two corpora; the
recipe is deterministic). Why: 128 px blurs line weight (a 1 px and a 2 px line look alike),
so every model card since version 1 named higher resolution as the next step; this measures
it before a GPU run is spent on it. Two measurements, [mu, statistics] read as `train fuse`
reads them (the model's loading and cropping, at the size asked for):

1. The style statistics (not trained, so every style is a fair fold): grouped cross-validation
   over the styles, each fold scored with the statistics' part of the fused map (`fit_map`,
   CNN weight 0) fitted on the other folds' styles; at the low size, the high size, the high
   rendering read at the low size (the control: it should score as the low one does), and the
   low and high statistics side by side.
2. The CNN's mu on the styles of `--unseen-sources` (never in its training), each rendering
   fed at its own size: whether the same weights already read more at the higher size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from stylesearch.embed import Embedder  # noqa: E402
from stylesearch.evaluate import score  # noqa: E402
from stylesearch.train.data import Example, load_examples, source_of  # noqa: E402
from stylesearch.train.fusion import fit_map, style_features  # noqa: E402

console = Console(highlight=False, width=160)


def read_at(embedder: Embedder, examples: list[Example], side: int) -> np.ndarray:
    """[mu, statistics] of every example read at side x side (the corpus is ours: all readable)."""
    embedder.size = side
    features, _, failed = style_features(embedder, examples)
    if failed:
        sys.exit(f"{len(failed)} unreadable images, e.g. {failed[0]}")
    return features


def cross_validated(statistics: np.ndarray, labels: np.ndarray, folds: int, runs: int) -> dict[str, float]:
    """Mean scores over grouped folds of the statistics' discriminant part fitted on the other folds."""
    results = []
    features = np.concatenate([np.zeros((len(statistics), 1), np.float32), statistics], 1)  # a 1-d mu, weight 0
    for fit, test in GroupKFold(folds).split(statistics, groups=labels):
        fitted = fit_map(features[fit], list(labels[fit]), 1, cnn_weight=0.0)
        results.append(score(fitted.apply(features[test]), labels[test], runs=runs))
    return {name: round(float(np.mean([r[name] for r in results])), 2) for name in ("ACC", "ARI", "NMI", "P@10", "mAP@R")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--low", type=Path, required=True, help="corpus rendered at the model's input size")
    parser.add_argument("--high", type=Path, required=True, help="the same recipe rendered larger (build_corpus.py --side)")
    parser.add_argument("--model", type=Path, required=True, help="the CNN whose mu is read (trained at the low size)")
    parser.add_argument("--unseen-sources", default="iconsets", help="sources the CNN never trained on (measurement 2)")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--kmeans-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True, help="results JSON")
    args = parser.parse_args()
    args.low, args.high = args.low.resolve(), args.high.resolve()  # the CSV's paths come resolved

    matched = [e for e in load_examples(args.high / "labels.csv") if (args.low / Path(e.path).relative_to(args.high)).exists()]
    if not matched:
        sys.exit(f"no drawing of {args.high} is also in {args.low}")
    low = [Example(str(args.low / Path(e.path).relative_to(args.high)), e.artist) for e in matched]
    labels = np.array([e.artist for e in matched])
    embedder = Embedder(args.model, precision="fp32", cnn_only=True)
    small, large = embedder.size, _side(matched[0].path)
    embed_dim = embedder.info.config.embed_dim
    console.print(f"{len(matched)} drawings of {len(set(labels))} styles, read at {small} and {large} px")
    features = {"low": read_at(embedder, low, small), "high": read_at(embedder, matched, large),
                "high read at low size": read_at(embedder, matched, small)}
    statistics = {name: f[:, embed_dim:] for name, f in features.items()}
    statistics["low and high side by side"] = np.concatenate([statistics["low"], statistics["high"]], 1)
    results: dict = {"drawings": len(matched), "styles": len(set(labels)), "sizes": [small, large], "statistics": {}, "mu": {}}
    for name, values in statistics.items():
        results["statistics"][name] = cross_validated(values, labels, args.folds, args.kmeans_runs)
        console.print(f"statistics, {name}: {results['statistics'][name]}")
    unseen = np.isin([source_of(a) for a in labels], args.unseen_sources.split(","))
    for name in ("low", "high"):
        results["mu"][name] = score(features[name][unseen, :embed_dim], labels[unseen], runs=args.kmeans_runs)
        console.print(f"mu on {unseen.sum()} drawings of unseen styles, {name}: {results['mu'][name]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


def _side(path: str) -> int:
    """The rendered size (the recipe renders square drawings)."""
    with Image.open(path) as img:
        return min(img.size)


if __name__ == "__main__":
    main()
