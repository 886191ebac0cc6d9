"""Fused embeddings (`stylesearch train fuse`): which fitting data, CNN weight and normalisation, measured.

    .venv/bin/python bench/bench_fusion.py --real bench/out/corpus3/labels.csv \\
        --synthetic bench/out/synthetic3000/labels.csv \\
        --held-out-styles models/recipe/held_out_styles.txt --model models/stylesearch-default.pt \\
        --out bench/out/fusion

Features ([mu, style statistics], as `train fuse` computes them) are extracted once per image
and cached in OUT/features.npz. Three measurements:

0. Which statistics: grouped cross-validation over *all* training styles (the statistics are
   not trained, so every training style is a fair fold) of the statistics alone, fitted with
   every synthetic artist: all blocks, then each block left out (`--ablate`).
1. Selection, without the held-out styles: grouped cross-validation over the *training*
   styles of the sources the CNN never saw (`--cv-sources`, default chess and openclipart):
   each fold's styles are scored with a map fitted on all other training styles, for every
   number of synthetic artists added to the fitting data, every CNN weight, and with and
   without scaling each part of the map to unit length.
2. The held-out styles, scored once per variant (maps fitted on the real training styles,
   on them + every synthetic artist, or on the synthetic artists only; whole set, per
   source, and our own drawings in tests/data/style_check), beside the CNN alone, the raw
   statistics and the colour histogram.
3. With `--head-epochs`: the learned head (`--head-weights`; the map otherwise as `train fuse`
   makes it, whatever the options of 1. and 2.: unit parts, CNN weight 0.75, every synthetic
   artist): the same folds scored by mAP@R and NMI, with `--validation-styles` also those
   styles (left out of the CNN's training, so the folds' bias towards what the CNN read does
   not reach them; models/MODEL_CARD.md, after version 9), then the held-out styles once per
   variant.

Results: OUT/results.json and OUT/table.md; OUT/fit.csv lists the training styles and every
synthetic artist, the data `stylesearch train fuse` fits the bundled model's map on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from bench_mix import DRAWINGS, held_out_split, scores_by_source, write_csv  # noqa: E402
from rich.console import Console  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from stylesearch.embed import Embedder  # noqa: E402
from stylesearch.evaluate import colour_histogram, retrieval_scores, score  # noqa: E402
from stylesearch.imaging import load_image  # noqa: E402
from stylesearch.model.checkpoint import read_info  # noqa: E402
from stylesearch.model.statistics import BLOCKS, LAYOUT  # noqa: E402
from stylesearch.train.data import Example, load_examples, source_of  # noqa: E402
from stylesearch.train.fusion import fit_map, style_features  # noqa: E402

console = Console(highlight=False, width=160)


def cached_features(model: Path, groups: dict[str, list[Example]], cache: Path,
                    jpeg_quality: int | None = None) -> dict[str, np.ndarray]:
    """[mu, statistics] per group of examples (with `jpeg_quality`, of their JPEG copies);
    every image must be readable (the corpus is ours)."""
    embedder = Embedder(model, precision="fp32")
    made_by = (f"{embedder.info.model_id} statistics layout {LAYOUT}, paper whitened"  # (caches from before whiten_paper are stale)
               + (f" JPEG {jpeg_quality}" if jpeg_quality else ""))
    if cache.exists():
        stored = np.load(cache)
        if str(stored.get("made_by")) == made_by and all(
            name in stored and len(stored[name]) == len(examples) for name, examples in groups.items()
        ):
            return {name: stored[name] for name in groups}
    features = {}
    for name, examples in groups.items():
        values, kept, failed = style_features(embedder, examples, ("jpeg", jpeg_quality) if jpeg_quality else None)
        if failed:
            sys.exit(f"{len(failed)} unreadable images in {name}, e.g. {failed[0]}")
        features[name] = values
        console.print(f"features: {name}, {len(kept)} images" + (f" as JPEG {jpeg_quality}" if jpeg_quality else ""))
    np.savez(cache, made_by=made_by, **features)
    return features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="labels.csv of the real corpus")
    parser.add_argument("--synthetic", type=Path, required=True, help="labels.csv of the synthetic artists")
    parser.add_argument("--held-out-styles", type=Path, required=True, help="styles never fitted on, one per line")
    parser.add_argument("--model", type=Path, required=True, help="the CNN whose mu is fused")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/fusion")
    parser.add_argument("--cv-sources", default="chess,openclipart", help="sources the CNN never saw (selection folds)")
    parser.add_argument("--synthetic-counts", default="0,300,1000,all", help="synthetic artists added when fitting")
    parser.add_argument("--cnn-weights", default="0,0.5,0.75,1,2")
    parser.add_argument("--normalise", default="yes,no",
                        help="map variants, comma-separated: parts scaled to unit length (yes) or not (no); "
                             "the first one is used for the --ablate run (measurement 0)")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--ablate", action="store_true", help="also measure 0. (each statistics block left out)")
    parser.add_argument("--head-epochs", default="", help="learned heads to measure in 3., e.g. 0,15,30 (0: none; "
                                                         "empty: skip 3., which takes minutes per head and fold)")
    parser.add_argument("--head-weights", default="0.625,1.25,2.5", help="weights of the head's part in 3.")
    parser.add_argument("--validation-styles", type=Path,
                        help="in 3., also score these training styles (e.g. models/recipe/validation_styles.txt, "
                             "left out of the CNN's training) with maps fitted on every other training style: "
                             "unlike the folds' styles, the CNN has not seen them, so features read from it are "
                             "not favoured")
    parser.add_argument("--kmeans-runs", type=int, default=1,
                        help="in 3., NMI averaged over this many k-means seeds (one run's NMI on 10 styles moves by "
                             "several points with the seed)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    train, held = held_out_split(load_examples(args.real), args.held_out_styles)
    synthetic = load_examples(args.synthetic)
    write_csv(args.out / "fit.csv", train + synthetic)
    drawings = [Example(str(path), path.name.split("-")[0]) for path in sorted(DRAWINGS.glob("*.png"))]
    groups = {"train": train, "held": held, "synthetic": synthetic, "drawings": drawings}
    features = cached_features(args.model, groups, args.out / "features.npz")
    labels = {name: np.array([e.artist for e in examples]) for name, examples in groups.items()}
    embed_dim = read_info(args.model).config.embed_dim
    synthetic_artists = sorted(set(labels["synthetic"]))
    counts = [len(synthetic_artists) if c == "all" else int(c) for c in args.synthetic_counts.split(",")]
    weights = [float(w) for w in args.cnn_weights.split(",")]
    if not set(args.normalise.split(",")) <= {"yes", "no"}:
        parser.error(f"--normalise takes yes, no or yes,no (got {args.normalise!r})")
    modes = [m == "yes" for m in args.normalise.split(",")]

    def fitting_data(mask: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Training styles under `mask` plus the first `count` synthetic artists (sorted ids)."""
        chosen = np.isin(labels["synthetic"], synthetic_artists[:count])
        return (np.concatenate([features["train"][mask], features["synthetic"][chosen]]),
                np.concatenate([labels["train"][mask], labels["synthetic"][chosen]]))

    def folds(pool: np.ndarray):
        """(fitting rows, test rows) of the training styles: each fold's styles under `pool` are
        scored, every other training style is fitted on."""
        for _, test in GroupKFold(args.folds).split(np.zeros(pool.sum()), groups=labels["train"][pool]):
            fit_mask = ~np.isin(labels["train"], list(set(labels["train"][pool][test])))
            yield fit_mask, ~fit_mask

    def cross_validate(columns: np.ndarray, pool: np.ndarray, count: int, weight: float, normalise: bool) -> float:
        """Mean mAP@R over folds of the training styles under `pool`, each scored with a map
        fitted on the feature `columns` of every other training style + `count` synthetic artists."""
        fold_scores = []
        for fit_mask, _ in folds(pool):
            x, y = fitting_data(fit_mask, count)
            fitted = fit_map(x[:, columns], list(y), int((columns < embed_dim).sum()), cnn_weight=weight,
                             normalise=normalise)
            vectors = fitted.apply(features["train"][~fit_mask][:, columns])
            _, y_test = np.unique(labels["train"][~fit_mask], return_inverse=True)
            fold_scores.append(100 * retrieval_scores(vectors, y_test)["mAP@R"])
        return round(float(np.mean(fold_scores)), 2)

    # 0. which statistics blocks (statistics only, so every training style can be a fold)
    ablation = []
    if args.ablate:
        every = np.ones(len(train), bool)
        starts = np.cumsum([embed_dim, *BLOCKS.values()])[:-1]
        for left_out in (None, *BLOCKS):
            columns = np.concatenate([np.arange(start, start + size) for (name, size), start
                                      in zip(BLOCKS.items(), starts, strict=True) if name != left_out])
            ablation.append({"left out": left_out or "(none)",
                             "cv mAP@R": cross_validate(columns, every, len(synthetic_artists), 0.0, modes[0])})
            console.print(ablation[-1])

    # 1. selection by cross-validation on training styles the CNN never saw
    cv_sources = set(args.cv_sources.split(","))
    pool = np.array([source_of(a) in cv_sources for a in labels["train"]])
    all_columns = np.arange(features["train"].shape[1])
    selection = []
    for normalise in modes:
        for count in counts:
            for weight in weights:
                selection.append({"unit parts": normalise, "synthetic artists": count, "cnn weight": weight,
                                  "cv mAP@R": cross_validate(all_columns, pool, count, weight, normalise)})
                console.print(selection[-1])

    # 2. the held-out styles, once per variant
    sources = sorted({source_of(a) for a in labels["held"]})

    def evaluate(embed) -> dict:
        return {**scores_by_source(embed("held"), labels["held"]), "drawings": score(embed("drawings"), labels["drawings"])}

    held_out = {
        "colour histogram": evaluate(lambda g: np.stack([colour_histogram(load_image(e.path)) for e in groups[g]])),
        "CNN alone (mu)": evaluate(lambda g: features[g][:, :embed_dim]),
        "statistics alone, raw (no fitting)": evaluate(lambda g: features[g][:, embed_dim:]),
    }
    every, no_real = np.ones(len(train), bool), np.zeros(len(train), bool)
    fits = {"real only": (every, 0), f"real + {len(synthetic_artists)} synthetic": (every, len(synthetic_artists)),
            f"{len(synthetic_artists)} synthetic only": (no_real, len(synthetic_artists))}
    for normalise in modes:
        for data, (real_rows, count) in fits.items():
            for weight in weights:
                x, y = fitting_data(real_rows, count)
                fitted = fit_map(x, list(y), embed_dim, cnn_weight=weight, normalise=normalise)
                name = f"fused{', unit parts' if normalise else ''}, cnn weight {weight}, {data}"
                held_out[name] = evaluate(lambda g, f=fitted: f.apply(features[g]))
                console.print(f"{name}: mAP@R {held_out[name]['scores']['mAP@R']}")

    # 3. the learned head: one head per fold and epoch count, its part weighted afterwards
    head_epochs = [int(e) for e in args.head_epochs.split(",") if e]
    head_weights = [float(w) for w in args.head_weights.split(",")]

    def head_variants(fitted, epochs: int) -> dict[str, object]:
        if not epochs:
            return {"no head": fitted}
        return {f"head {epochs} epochs, weight {w}": replace(fitted, part_weights=(*fitted.part_weights[:-1], w))
                for w in head_weights}

    def head_fits(fit_mask: np.ndarray):
        """(variant, fitted map) of every variant, fitted on `fit_mask`'s training styles + every synthetic artist."""
        x, y = fitting_data(fit_mask, len(synthetic_artists))
        for epochs in head_epochs:
            yield from head_variants(fit_map(x, list(y), embed_dim, head_epochs=epochs), epochs).items()

    def head_scores(fit_mask: np.ndarray, test_mask: np.ndarray) -> dict[str, dict]:
        """Scores of the training styles under `test_mask`, per variant, fitted on `fit_mask`'s."""
        return {name: score(fitted.apply(features["train"][test_mask]), labels["train"][test_mask], runs=args.kmeans_runs)
                for name, fitted in head_fits(fit_mask)}

    fold_scores = defaultdict(list)
    for fit_mask, test_mask in folds(pool) if head_epochs else ():
        for name, scores in head_scores(fit_mask, test_mask).items():
            fold_scores[name].append(scores)
    validation = {}
    if head_epochs and args.validation_styles:
        listed = np.isin(labels["train"], [e.artist for e in held_out_split(train, args.validation_styles)[1]])
        validation = head_scores(~listed, listed)
    head_selection = [{"variant": name, **{m: round(float(np.mean([s[m] for s in runs])), 2) for m in ("mAP@R", "NMI")},
                       **{f"validation {m}": validation[name][m] for m in ("mAP@R", "NMI") if name in validation}}
                      for name, runs in fold_scores.items()]
    for name, fitted in head_fits(every):
        held_out[f"fused, {name}"] = evaluate(lambda g, f=fitted: f.apply(features[g]))
        console.print(f"fused, {name}: {held_out[f'fused, {name}']['scores']}")

    (args.out / "results.json").write_text(json.dumps({"ablation": ablation, "selection": selection,
                                                       "head_selection": head_selection, "held_out": held_out}, indent=2))
    lines = ["| statistics block left out | cv mAP@R |", "|---|---|"]
    lines += [f"| {row['left out']} | {row['cv mAP@R']} |" for row in ablation]
    lines += ["", "| unit parts | synthetic artists | cnn weight | cv mAP@R |", "|---|---|---|---|"]
    lines += [f"| {row['unit parts']} | {row['synthetic artists']} | {row['cnn weight']} | {row['cv mAP@R']} |"
              for row in selection]
    if head_selection:
        lines += ["", "| fused map variant | cv mAP@R | cv NMI | validation mAP@R | validation NMI |", "|---|---|---|---|---|"]
        lines += [f"| {row['variant']} | {row['mAP@R']} | {row['NMI']} | {row.get('validation mAP@R', '')} | "
                  f"{row.get('validation NMI', '')} |" for row in head_selection]
    columns = ("ACC", "ARI", "NMI", "P@10", "mAP@R")
    lines += ["", f"| embedding | {' | '.join(columns)} | {' | '.join(sources)} | drawings |", "|---" * (len(columns) + len(sources) + 2) + "|"]
    for name, row in held_out.items():
        cells = [str(row["scores"][c]) for c in columns] + [str(row["by_source"][s]["mAP@R"]) for s in sources]
        lines.append(f"| {name} | {' | '.join(cells)} | {row['drawings']['mAP@R']} |")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    console.print("\n".join(lines))


if __name__ == "__main__":
    main()
