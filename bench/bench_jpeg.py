"""Does fitting the fused map on JPEG copies (`train fuse --jpeg-copies`) keep JPEG files findable?

    .venv/bin/python bench/bench_jpeg.py --real bench/out/corpus4/labels.csv \\
        --synthetic bench/out/synthetic3000/labels.csv \\
        --held-out-styles models/recipe/held_out_styles.txt --model bench/out/gpu2/a-paper-mixed.pt \\
        --cache bench/out/fusion9-iconsets --out bench/results/jpeg.json

Why: the corpus is rendered to PNG, most collections are JPEG, and the statistics read JPEG's
blocks and ringing as style. Each variant (`--variants`: the JPEG qualities fitted on besides
the PNGs) fits the map and head as `train fuse` does, on the training styles except the
validation styles and every synthetic artist, then scores the validation styles (the
decision) and the held-out styles (reported) with every image as PNG, as a JPEG of each
`--test-qualities`, and mixed (a seeded half of the images as JPEG of the first mixed quality,
as in a library of both). NMI is the mean of `--kmeans-runs` seeds. [mu, statistics] of the
PNGs come from bench_fusion.py's cache (its OUT folder), the JPEG copies' are cached beside it
(jpeg<quality>-features.npz).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from bench_fusion import cached_features  # noqa: E402
from bench_mix import held_out_split  # noqa: E402
from rich.console import Console  # noqa: E402

from stylesearch.evaluate import score  # noqa: E402
from stylesearch.model.checkpoint import read_info  # noqa: E402
from stylesearch.train.data import load_examples  # noqa: E402
from stylesearch.train.fusion import fit_map  # noqa: E402

console = Console(highlight=False, width=160)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="labels.csv of the real corpus")
    parser.add_argument("--synthetic", type=Path, required=True, help="labels.csv of the synthetic artists")
    parser.add_argument("--held-out-styles", type=Path, required=True, help="styles never fitted on, one per line")
    parser.add_argument("--validation-styles", type=Path, default=ROOT / "models/recipe/validation_styles.txt",
                        help="training styles left out of every fit here: the decision is made on them")
    parser.add_argument("--model", type=Path, required=True, help="the CNN whose mu is fused")
    parser.add_argument("--cache", type=Path, required=True, help="bench_fusion.py's OUT folder (its features.npz)")
    parser.add_argument("--variants", default=",75,90+75", help="JPEG qualities fitted on besides the PNGs, per variant "
                                                              "(comma between variants, + within one; empty: PNGs only)")
    parser.add_argument("--test-qualities", default="95,90,75,60")
    parser.add_argument("--mixed-quality", type=int, default=75)
    parser.add_argument("--skip-sources", default="iconsets", help="held-out sources left out of the held-out scores")
    parser.add_argument("--kmeans-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True, help="results JSON")
    args = parser.parse_args()

    train, held = held_out_split(load_examples(args.real), args.held_out_styles)
    synthetic = load_examples(args.synthetic)
    features = cached_features(args.model, {"train": train, "held": held, "synthetic": synthetic}, args.cache / "features.npz")
    variants = [[int(q) for q in v.split("+") if q] for v in args.variants.split(",")]
    tests = [int(q) for q in args.test_qualities.split(",")]
    fitted_qualities = {q for v in variants for q in v}
    for quality in sorted(fitted_qualities | set(tests) | {args.mixed_quality}):  # the synthetic artists only where fitted on
        groups = {"train": train, "held": held} | ({"synthetic": synthetic} if quality in fitted_qualities else {})
        copies = cached_features(args.model, groups, args.cache / f"jpeg{quality}-features.npz", quality)
        features |= {f"{name} q{quality}": values for name, values in copies.items()}
    labels = {name: np.array([e.artist for e in examples]) for name, examples in
              {"train": train, "held": held, "synthetic": synthetic}.items()}
    validation = {line.strip() for line in args.validation_styles.read_text().splitlines() if not line.startswith("#")} - {""}
    scored = {"validation": ("train", np.isin(labels["train"], list(validation))),
              "held-out": ("held", ~np.isin([a.split("/")[0] for a in labels["held"]], args.skip_sources.split(",")))}
    fit_rows = ~scored["validation"][1]
    rng = np.random.default_rng(0)
    halves = {set_name: rng.random(rows.sum()) < 0.5 for set_name, (_, rows) in scored.items()}  # the same for every variant
    results: dict = {}
    for qualities in variants:
        name = "PNG only" if not qualities else "PNG + JPEG " + "+".join(map(str, qualities))
        started = time.monotonic()
        suffixes = [""] + [f" q{q}" for q in qualities]
        fit = np.concatenate([np.concatenate([features["train" + s][fit_rows], features["synthetic" + s]]) for s in suffixes])
        artists = list(np.concatenate([labels["train"][fit_rows], labels["synthetic"]])) * len(suffixes)
        fitted = fit_map(fit, artists, read_info(args.model).config.embed_dim, head_epochs=15)  # as `train fuse`
        results[name] = {"fit seconds": round(time.monotonic() - started, 1)}
        for set_name, (group, rows) in scored.items():
            half = halves[set_name]
            conditions = {"PNG": features[group][rows], **{f"JPEG {q}": features[f"{group} q{q}"][rows] for q in tests},
                          f"mixed PNG / JPEG {args.mixed_quality}": np.where(half[:, None], features[f"{group} q{args.mixed_quality}"][rows],
                                                                               features[group][rows])}
            for condition, values in conditions.items():
                s = score(fitted.apply(values), labels[group][rows], runs=args.kmeans_runs)
                results[name][f"{set_name}, {condition}"] = {"mAP@R": s["mAP@R"], "NMI": s["NMI"]}
            means = [results[name][f"{set_name}, {c}"]["mAP@R"] for c in conditions]
            results[name][f"{set_name}, mean mAP@R"] = round(float(np.mean(means)), 2)
        console.print(name, results[name])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
