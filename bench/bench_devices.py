"""Do the style statistics and the embedding come out the same on the CPU and on a GPU?

    python3 bench/bench_devices.py --data bench/out/corpus3/labels.csv --held-out-styles models/recipe/held_out_styles.txt

A fused map is fitted on statistics computed on one device and applied on another, so every
statistic should be device-independent. Prints, per block of `model/statistics.py`, the
largest difference and how many images differ by more than 1e-4, and the model's scores on
the held-out styles embedded on each device.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_mix import held_out_split  # noqa: E402

from stylesearch.embed import Embedder  # noqa: E402
from stylesearch.evaluate import score  # noqa: E402
from stylesearch.imaging import load_image  # noqa: E402
from stylesearch.model import statistics as st  # noqa: E402
from stylesearch.model.checkpoint import read_info  # noqa: E402
from stylesearch.train.data import augmentations, load_examples  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="labels.csv of the corpus")
    parser.add_argument("--held-out-styles", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "stylesearch-default.pt")
    parser.add_argument("--images", type=int, default=256, help="images compared statistic by statistic")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: nothing to compare")
    examples = load_examples(args.data)
    step = max(1, len(examples) // args.images)
    config = read_info(args.model).config  # the statistics of the images as the model sees them
    prepare = augmentations("none", config.input_size, config.mean, config.std)
    x = torch.stack([prepare(load_image(e.path, config.input_size)) for e in examples[::step][: args.images]])
    results: dict = {"blocks": {}, "held_out": {}}
    statistics = st.StyleStatistics(config.mean, config.std)
    cpu, gpu = statistics(x), statistics(x.cuda()).cpu()
    offset = 0
    for name, size in st.BLOCKS.items():
        diff = (cpu[:, offset : offset + size] - gpu[:, offset : offset + size]).abs().amax(1)
        results["blocks"][name] = {"max": float(diff.max()), "images_over_1e-4": int((diff > 1e-4).sum())}
        offset += size
    _, held = held_out_split(examples, args.held_out_styles)
    for device in ("cpu", "cuda"):
        embedder = Embedder(args.model, device=device, precision="fp32")
        rows = list(embedder.stream([e.path for e in held]))
        if failed := [f"{path}: {error}" for path, _, error in rows if error]:
            sys.exit(f"{len(failed)} unreadable images, e.g. {failed[0]}")
        artist = {e.path: e.artist for e in held}  # the stream yields in its own order
        results["held_out"][device] = score(np.stack([v for _, v, _ in rows]), [artist[path] for path, _, _ in rows])
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
