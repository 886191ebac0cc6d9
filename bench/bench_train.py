"""Table 2 of the paper on a small real corpus, on this machine's CPU: every loss variant,
with and without SimCLR pre-training, scored on unseen styles (held-out artists) and seen
styles (new images of training artists), beside simple baselines.

    .venv/bin/python models/recipe/build_corpus.py --out bench/out/corpus --sources emoji --side 96
    .venv/bin/python bench/bench_train.py --data bench/out/corpus/emoji     # 12 emoji styles x 120 subjects

Sizes are CPU-small (64 px, P x K = 6 x 8, a few epochs), so absolute numbers are far from
the paper's Danbooru runs; the point is the side-by-side ranking of the variants.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from stylesearch.embed import Embedder  # noqa: E402
from stylesearch.evaluate import BASELINES, score  # noqa: E402
from stylesearch.imaging import load_image  # noqa: E402
from stylesearch.train.config import LOSS_SPECS, FinetuneConfig, PretrainConfig  # noqa: E402
from stylesearch.train.data import Example, load_examples, split_by_artist  # noqa: E402
from stylesearch.train.finetune import finetune  # noqa: E402
from stylesearch.train.loop import RunOptions  # noqa: E402
from stylesearch.train.pretrain import pretrain  # noqa: E402

console = Console(highlight=False, width=160)
QUIET = RunOptions(progress=False)


def split(examples: list[Example], unseen: int, seen_share: float, seed: int):
    """Unseen = whole held-out artists; seen test = the last subjects of each training artist."""
    train, unseen_test = split_by_artist(examples, unseen, seed)
    subjects = sorted({Path(e.path).name for e in train})
    test_subjects = set(subjects[int(len(subjects) * (1 - seen_share)):])
    seen_test = [e for e in train if Path(e.path).name in test_subjects]
    return [e for e in train if Path(e.path).name not in test_subjects], seen_test, unseen_test


def vectors_for(model: Path, examples: list[Example]) -> np.ndarray:
    embedder = Embedder(model, precision="fp32")
    return np.stack([embedder.embed_file(e.path) for e in examples])


def scores(vectors: np.ndarray, examples: list[Example]) -> dict:
    return score(vectors, [e.artist for e in examples])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "bench/out/corpus/emoji")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/train")
    parser.add_argument("--unseen", type=int, default=4, help="artists held out entirely")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--pretrain-epochs", type=int, default=15)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--p", type=int, default=6)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--losses", default=",".join(LOSS_SPECS))
    parser.add_argument("--augment", default="style", help="fine-tuning augmentations: style, simclr or none")
    parser.add_argument("--inits", default="none,simclr", help="pre-training variants to fine-tune from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train, seen, unseen = split(load_examples(args.data), args.unseen, 0.2, args.seed)
    console.print(f"train {len(train)} images / {len({e.artist for e in train})} artists; seen test {len(seen)}; "
                  f"unseen test {len(unseen)} images / {len({e.artist for e in unseen})} artists")
    rows: dict[str, dict] = {}
    for name, feature in BASELINES.items():
        rows[name] = {"unseen": scores(np.stack([feature(load_image(e.path)) for e in unseen]), unseen),
                      "seen": scores(np.stack([feature(load_image(e.path)) for e in seen]), seen), "minutes": 0}

    started = time.monotonic()
    simclr = args.out / "simclr.pt"
    pretrain([e.path for e in train], simclr, PretrainConfig(epochs=args.pretrain_epochs, batch_size=128, lr=0.6,
             warmup_epochs=2, input_size=args.input_size, seed=args.seed), run=QUIET)
    pretrain_minutes = (time.monotonic() - started) / 60
    rows["SimCLR only (no fine-tuning)"] = {"unseen": scores(vectors_for(simclr, unseen), unseen),
                                            "seen": scores(vectors_for(simclr, seen), seen), "minutes": pretrain_minutes}
    for init in [simclr if name == "simclr" else None for name in args.inits.split(",")]:
        for loss in args.losses.split(","):
            label = f"{'SimCLR' if init else 'none'} + {loss}" + (f" (augment {args.augment})" if args.augment != "style" else "")
            out = args.out / f"{'simclr' if init else 'scratch'}-{loss}-{args.augment}.pt"
            config = FinetuneConfig(loss=loss, epochs=args.epochs, p=args.p, k=args.k, input_size=args.input_size,
                                    held_out=0, seed=args.seed, augment=args.augment)
            started = time.monotonic()
            finetune(train, out, config, init=init, run=QUIET)
            rows[label] = {"unseen": scores(vectors_for(out, unseen), unseen), "seen": scores(vectors_for(out, seen), seen),
                           "minutes": (time.monotonic() - started) / 60}
            console.print(f"{label}: unseen NMI {rows[label]['unseen']['NMI']}  mAP@R {rows[label]['unseen']['mAP@R']}")
            (args.out / "bench_train.json").write_text(json.dumps({"args": vars(args) | {"data": str(args.data), "out": str(args.out)},
                                                                   "rows": rows}, indent=2, default=str))

    table = Table(title="Table 2 variants on 12 emoji styles (CPU, 64 px)", box=None)
    for column in ("model", "unseen ACC", "unseen ARI", "unseen NMI", "unseen mAP@R", "seen NMI", "seen mAP@R", "train min"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for label, row in rows.items():
        u, s = row["unseen"], row["seen"]
        table.add_row(label, str(u["ACC"]), str(u["ARI"]), str(u["NMI"]), str(u["mAP@R"]), str(s["NMI"]), str(s["mAP@R"]),
                      f"{row['minutes']:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
