"""Which training data and recipe generalise to unseen *real* styles, at equal compute (issues 4, 10).

    .venv/bin/python models/recipe/build_corpus.py --out bench/out/corpus128 --side 128
    .venv/bin/python models/recipe/synthetic_artists.py --out bench/out/synthetic --bases ...  # see MODEL_CARD.md
    .venv/bin/python bench/bench_mix.py --real bench/out/corpus128/labels.csv \\
        --synthetic bench/out/synthetic/labels.csv --out bench/out/mix --steps 400

Whole real styles are held out (never trained on, never used as synthetic bases) and every
run is scored on them; it is validated (its checkpoint chosen) on them too, or, with
`--validate-styles`, on training styles left out of training, so that no choice is made on
the styles scored. `--complement FUSED.pt` trains every run on what that model's statistics
miss (`train finetune --complement`). Runs are `recipe:data` pairs:
- recipes: ours (SupCon + mean/std pooling), paper (Triplet + VAE, average pooling),
  triplet, arcface (the paper's baselines);
- data: real, synthetic, mixed (P x K batches balanced across sources).
Every run takes the same number of optimiser steps of the same batch shape and image size.
Simple baselines (and any --compare checkpoints) are scored on the same images; besides the
whole held-out set, each source's styles are scored alone, and so are our own drawings
(tests/data/style_check), where every artist draws the same subjects: a style measure that
subject matter cannot help, unlike openclipart, whose creators each draw their own subjects.
The table is printed and written as OUT/table.md. Resumable: finished runs are kept in
OUT/results.json and skipped; an interrupted one resumes from its last epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_train import scores, vectors_for  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from stylesearch.embed import Embedder  # noqa: E402
from stylesearch.evaluate import BASELINES, score  # noqa: E402
from stylesearch.imaging import load_image  # noqa: E402
from stylesearch.model.checkpoint import load_encoder, save_encoder  # noqa: E402
from stylesearch.model.encoder import EncoderConfig, StyleEncoder  # noqa: E402
from stylesearch.train.config import FinetuneConfig  # noqa: E402
from stylesearch.train.data import Example, load_examples, source_of, split_by_artist  # noqa: E402
from stylesearch.train.finetune import finetune  # noqa: E402
from stylesearch.train.loop import RunOptions  # noqa: E402

console = Console(highlight=False, width=160)
RECIPES = {
    "ours": {"loss": "supcon", "pooling": "meanstd"},
    "paper": {"loss": "triplet+vae", "pooling": "avg"},
    "triplet": {"loss": "triplet", "pooling": "avg"},
    "arcface": {"loss": "arc", "pooling": "avg"},
}
DEFAULT_RUNS = "ours:real,ours:mixed,ours:synthetic,triplet:mixed,arcface:mixed,paper:mixed"
DRAWINGS = ROOT / "tests" / "data" / "style_check"  # our own: 3 artists x the same 6 subjects


def write_csv(path: Path, examples: list[Example]) -> None:
    path.write_text("path,artist\n" + "".join(f"{e.path},{e.artist}\n" for e in examples))


def scores_by_source(vectors: np.ndarray, artists: list[str]) -> dict:
    """Scores on the whole set and on each source's styles alone."""
    artists = np.asarray(artists)
    sources = np.array([source_of(a) for a in artists])
    return {"scores": score(vectors, artists),
            "by_source": {source: score(vectors[sources == source], artists[sources == source]) for source in sorted(set(sources.tolist()))}}


def random_gram(model: Path, examples: list[Example]) -> np.ndarray:
    """The classic texture representation (Gatys et al.) on a random network: Gram matrices
    (upper triangles) of the outputs of its first and second stages. On the CPU: it is small."""
    embedder = Embedder(model, device="cpu", precision="fp32")  # its preprocessing; the trunk is used unfused
    trunk = load_encoder(model)[0].trunk.eval()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(examples), 64):
            batch = np.stack([embedder.preprocess(load_image(e.path)) for e in examples[start : start + 64]])
            x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() - embedder.mean) / embedder.std
            x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(x))))
            grams = []
            for layer in (trunk.layer1, trunk.layer2):
                x = layer(x)
                maps = x.flatten(2)
                gram = maps @ maps.transpose(1, 2) / maps.shape[2]
                upper = torch.triu_indices(gram.shape[1], gram.shape[1])
                grams.append(gram[:, upper[0], upper[1]])
            rows.append(torch.cat(grams, 1).numpy())
    return np.concatenate(rows)


def held_out_split(examples: list[Example], listing: Path) -> tuple[list[Example], list[Example]]:
    """(train, held out) with the listed styles held out. A listed style with no images is an
    error (a misspelt name would silently join training) unless the corpus has no source of
    that name at all (built without it: nothing of it can be trained on)."""
    styles = {line.strip() for line in listing.read_text().splitlines()} - {""}
    styles = {style for style in styles if not style.startswith("#")}
    if not styles:
        sys.exit(f"{listing}: no styles listed")
    sources = {source_of(e.artist) for e in examples}
    if missing := {style for style in styles - {e.artist for e in examples} if source_of(style) in sources}:
        sys.exit(f"{listing}: no images of {', '.join(sorted(missing))}")
    return [e for e in examples if e.artist not in styles], [e for e in examples if e.artist in styles]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="labels.csv of the real corpus")
    parser.add_argument("--synthetic", type=Path, required=True, help="labels.csv of the synthetic artists")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/mix")
    parser.add_argument("--held-out", type=int, default=9, help="real styles held out (split seeded by --seed)")
    parser.add_argument("--held-out-styles", type=Path,
                        help="hold out exactly these styles instead (a file of source/style lines, '#' comments)")
    parser.add_argument("--validate-styles", type=Path,
                        help="validate on (and choose each run's checkpoint by) these training styles, left out of "
                             "training, instead of the held-out styles: no choice is then made on the styles scored")
    parser.add_argument("--complement", type=Path,
                        help="a fused model: train each CNN on what its statistics miss (train finetune --complement)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--workers", type=int, default=1, help="image decoding processes per run")
    parser.add_argument("--runs", default=DEFAULT_RUNS)
    parser.add_argument("--train-without", nargs="*", default=[], metavar="SOURCE",
                        help="leave these real sources out of training (their held-out styles are still scored)")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="also score these trained checkpoints")
    parser.add_argument("--steps", type=int, default=400, help="optimiser steps per run")
    parser.add_argument("--epoch-steps", type=int, default=0,
                        help="validate every N steps (0: after each pass over the run's images)")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--zoom", type=float, default=1.0, help="style crops from the image resized to zoom x input size")
    parser.add_argument("--p", type=int, default=12)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    real = load_examples(args.real)
    if args.held_out_styles:
        real_train, held = held_out_split(real, args.held_out_styles)
    else:
        real_train, held = split_by_artist(real, args.held_out, args.seed)
    synthetic = load_examples(args.synthetic)
    write_csv(args.out / "heldout.csv", held)
    validation = args.out / "heldout.csv"
    if args.validate_styles:
        real_train, chosen_on = held_out_split(real_train, args.validate_styles)
        validation = args.out / "validation.csv"
        write_csv(validation, chosen_on)
    real_train = [e for e in real_train if source_of(e.artist) not in args.train_without]
    data = {"real": real_train, "synthetic": synthetic, "mixed": real_train + synthetic}
    console.print(f"held out: {len(held)} images of {len({e.artist for e in held})} real styles: "
                  + ", ".join(sorted({e.artist for e in held})))
    for name, examples in data.items():
        console.print(f"{name}: {len(examples)} images, {len({e.artist for e in examples})} artists")

    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=2))

    drawings = [Example(str(path), path.name.split("-")[0]) for path in sorted(DRAWINGS.glob("*.png"))]
    sources = sorted({source_of(e.artist) for e in held})

    def evaluate(embed) -> dict:
        """Scores of one embedding (a function of a list of examples) on the held-out styles,
        on each source's styles alone, and on our own drawings (tests/data/style_check: 3
        artists x the same 6 subjects, so content cannot help there)."""
        return {**scores_by_source(embed(held), [e.artist for e in held]), "drawings": scores(embed(drawings), drawings)}

    for name, feature in BASELINES.items():
        if name not in results:
            results[name] = {**evaluate(lambda examples, f=feature: np.stack([f(load_image(e.path)) for e in examples])),
                             "minutes": 0}
    if "random network mean/std" not in results:
        torch.manual_seed(args.seed)
        random_net = StyleEncoder(EncoderConfig(input_size=args.input_size, pooling="meanstd")).eval()
        save_encoder(args.out / "random-meanstd.pt", random_net, name="random-meanstd", version="0", trained=False)
        results["random network mean/std"] = {**evaluate(partial(vectors_for, args.out / "random-meanstd.pt")),
                                              "minutes": 0}
    if "random network Gram" not in results:  # the same random network's feature maps
        results["random network Gram"] = {**evaluate(partial(random_gram, args.out / "random-meanstd.pt")), "minutes": 0}
    for model in args.compare:
        if str(model) not in results:
            results[str(model)] = {**evaluate(partial(vectors_for, model)), "minutes": 0}
    save()

    for spec in filter(None, args.runs.split(",")):  # --runs "": score --compare models only
        run = f"{spec}+complement" if args.complement else spec  # a plain run's results are not a complement run's
        if run in results:
            continue
        recipe, source = spec.split(":")
        examples = data[source]
        batches_per_epoch = args.epoch_steps or max(1, len(examples) // (args.p * args.k))
        config = FinetuneConfig(**RECIPES[recipe], epochs=math.ceil(args.steps / batches_per_epoch),
                                epoch_steps=args.epoch_steps, zoom=args.zoom, p=args.p, k=args.k,
                                lr=args.lr, input_size=args.input_size, balance="source", validate=str(validation),
                                complement=str(args.complement or ""),
                                seed=args.seed, workers=args.workers, name=f"stylesearch-{recipe}-{source}")
        model = args.out / f"{run.replace(':', '-').replace('+', '-')}.pt"
        started = time.monotonic()
        result = finetune(examples, model, config, run=RunOptions(device=args.device, progress=False,
                                                                 resume=Path(f"{model}.state").exists(), max_steps=args.steps))
        minutes = (time.monotonic() - started) / 60
        results[run] = {**evaluate(partial(vectors_for, model)), "minutes": round(minutes, 1),
                        "history": result["history"], "config": config.__dict__}
        console.print(f"{run}: NMI {results[run]['scores']['NMI']}  mAP@R {results[run]['scores']['mAP@R']}  ({minutes:.1f} min)")
        save()

    title = (f"Held-out real styles ({len(held)} images, {len({e.artist for e in held})} styles); "
             f"{args.steps} steps of {args.p}x{args.k} at {args.input_size} px")
    columns = ("ACC", "ARI", "NMI", "P@10", "mAP@R")
    extra = [f"{source} mAP@R" for source in sources] + ["drawings mAP@R"]
    table = Table(title=title, box=None)
    for column in ("model", *columns, *extra, "train min"):
        table.add_column(column, justify="left" if column == "model" else "right")
    lines = [f"| model | {' | '.join(columns + tuple(extra))} | train min |", "|---" * (len(columns) + len(extra) + 2) + "|"]
    for label, row in results.items():
        cells = [str(row["scores"][c]) for c in columns]
        cells += [str(row.get("by_source", {}).get(source, {}).get("mAP@R", "")) for source in sources]
        cells.append(str(row.get("drawings", {}).get("mAP@R", "")))
        table.add_row(label, *cells, str(row["minutes"]))
        lines.append(f"| {label} | {' | '.join(cells)} | {row['minutes']} |")
    console.print(table)
    (args.out / "table.md").write_text(f"{title}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
