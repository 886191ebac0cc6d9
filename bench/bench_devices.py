"""Do the style statistics and the embedding come out the same on the CPU and on a GPU?

    python3 bench/bench_devices.py --data bench/out/corpus3/labels.csv --held-out-styles models/recipe/held_out_styles.txt

A fused map is fitted on statistics computed on one device and applied on another, so every
statistic should be device-independent. Prints, per block of `model/statistics.py`, the
largest difference and how many images differ by more than 1e-4, the intermediate values
that feed them, and the shipped model's scores on the held-out styles embedded on each device.
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
import torch.nn.functional as F  # noqa: E402
from bench_mix import held_out_split  # noqa: E402

from stylesearch.embed import Embedder  # noqa: E402
from stylesearch.evaluate import score  # noqa: E402
from stylesearch.imaging import load_image  # noqa: E402
from stylesearch.model import statistics as st  # noqa: E402
from stylesearch.train.data import augmentations, load_examples  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def intermediates(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the statistics are computed from, as `StyleStatistics.forward` makes them."""
    column = lambda values: torch.tensor(values, device=x.device).view(1, 3, 1, 1)  # noqa: E731
    levels = ((x.float() * column(STD) + column(MEAN)) * 255).round_().clamp_(0, 255)
    rgb = levels * (1 / 255)
    grey = st._grey(rgb)
    grad, magnitude = st._gradient(grey)
    hue, saturation, value = st._hsv(rgb)
    fg = st._foreground(rgb)
    median = grey.masked_fill(fg == 0, float("nan")).flatten(1).nanmedian(1).values
    return {"levels": levels, "grey": grey, "magnitude": magnitude, "directions": st._directions(grad).float(),
            "hue": hue, "saturation": saturation, "value": value, "foreground": fg, "median": median,
            "half": F.avg_pool2d(levels, 2) * (1 / 255)}


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
    prepare = augmentations("none", 128, MEAN, STD)
    x = torch.stack([prepare(load_image(e.path, 128)) for e in examples[::step][: args.images]])
    results: dict = {"blocks": {}, "intermediates": {}, "held_out": {}}
    cpu, gpu = st.StyleStatistics(MEAN, STD)(x), st.StyleStatistics(MEAN, STD)(x.cuda()).cpu()
    offset = 0
    for name, size in st.BLOCKS.items():
        diff = (cpu[:, offset : offset + size] - gpu[:, offset : offset + size]).abs().amax(1)
        results["blocks"][name] = {"max": float(diff.max()), "images_over_1e-4": int((diff > 1e-4).sum())}
        offset += size
    on_cpu, on_gpu = intermediates(x), intermediates(x.cuda())
    for name, value in on_cpu.items():
        diff = (value - on_gpu[name].cpu()).abs().float()
        results["intermediates"][name] = {"max": float(diff.nan_to_num().max()), "values_differing": int((diff > 0).sum())}
    _, held = held_out_split(load_examples(args.data), args.held_out_styles)
    for device in ("cpu", "cuda"):
        embedder = Embedder(args.model, device=device, precision="fp32")
        vectors = np.stack([v for _, v, _ in embedder.stream([e.path for e in held])])
        results["held_out"][device] = score(vectors, [e.artist for e in held])
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
