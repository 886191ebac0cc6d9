"""Write degraded copies of a labelled image set, to score the bundled model on them with `stylesearch eval`.

    .venv/bin/python bench/make_copies.py bench/out/corpus3/heldout.csv bench/out/heldout-noise2 --noise 2
    .venv/bin/python -m stylesearch --precision fp32 eval bench/out/heldout-noise2/labels.csv --kmeans-runs 5

Kinds (one per run): --jpeg QUALITY (saved as JPEG), --noise LEVEL (half the channel values
moved by up to LEVEL levels, `train.data.noisy_copy`, at the file's size: the corpus is
rendered at the model's 128 px, so the model reads exactly this noise), --paper R,G,B (every
pixel times the colour / 255: ink printed on tinted paper). Each copy keeps its path below the
folder all the originals share (and its artist); labels.csv beside them lists them.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from stylesearch.train.data import load_examples, noisy_copy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labels", type=Path, help="labels.csv (path,artist) of the originals")
    parser.add_argument("out", type=Path, help="folder for the copies and their labels.csv")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--jpeg", type=int, metavar="QUALITY")
    kind.add_argument("--noise", type=int, metavar="LEVEL")
    kind.add_argument("--paper", metavar="R,G,B")
    args = parser.parse_args()
    if args.jpeg is not None and not 1 <= args.jpeg <= 100:
        parser.error(f"--jpeg: a quality from 1 to 100 (got {args.jpeg})")
    if args.noise is not None and args.noise < 1:  # level 0 would copy the originals unchanged
        parser.error(f"--noise: a level of at least 1 (got {args.noise})")
    paper = None
    if args.paper is not None:
        paper = [int(c) for c in args.paper.split(",") if c.strip().isdigit()]
        if len(paper) != 3 or len(args.paper.split(",")) != 3 or max(paper) > 255:
            parser.error(f"--paper: three channel values from 0 to 255, as R,G,B (got {args.paper!r})")
    examples = load_examples(args.labels)
    root = Path(os.path.commonpath([Path(e.path).resolve().parent for e in examples]))
    rows = []
    for example in examples:
        relative = Path(example.path).resolve().relative_to(root)
        pixels = np.asarray(Image.open(example.path).convert("RGB"))
        if args.noise is not None:
            pixels = noisy_copy(pixels, args.noise)
        elif paper is not None:
            pixels = (pixels * (np.array(paper) / 255)).round().astype(np.uint8)
        target = args.out / (relative.with_suffix(".jpg") if args.jpeg is not None else relative.with_suffix(".png"))
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target, **({"quality": args.jpeg} if args.jpeg is not None else {}))
        rows.append((target.relative_to(args.out).as_posix(), example.artist))
    with open(args.out / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("path", "artist"), *rows])
    print(f"{len(rows)} copies in {args.out}")


if __name__ == "__main__":
    main()
