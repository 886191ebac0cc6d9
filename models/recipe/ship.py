"""Turn a trained full-precision checkpoint into the bundled model, and prove fp16 is safe.

    .venv/bin/python models/recipe/ship.py --model bench/out/mix/ours-mixed.pt \\
        --check bench/out/mix/heldout.csv --out models/stylesearch-default.pt --version 2

Writes OUT with fp16 weights (half the size) under the given name and version, then embeds
the --check images with both files (fp32 inference) and compares each image's 10 nearest
neighbours: the mean top-10 overlap must be >= --min-overlap (0.95, issue 4), otherwise
nothing is kept. Prints one JSON line: sizes, overlap, model id.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from stylesearch.embed import Embedder  # noqa: E402
from stylesearch.evaluate import neighbour_order  # noqa: E402
from stylesearch.model.checkpoint import load_encoder, save_encoder  # noqa: E402
from stylesearch.train.data import load_examples  # noqa: E402


def overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each image's k nearest neighbours that two embeddings agree on."""
    near_a, near_b = (neighbour_order(v.astype(np.float64))[:, :k] for v in (a, b))
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(near_a, near_b, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--check", type=Path, required=True, help="images to compare rankings on (labels.csv or folder)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="stylesearch-style")
    parser.add_argument("--version", required=True)
    parser.add_argument("--min-overlap", type=float, default=0.95)
    args = parser.parse_args()

    model, info = load_encoder(args.model)
    candidate = args.out.with_suffix(".candidate.pt")
    shipped = save_encoder(candidate, model.eval(), name=args.name, version=args.version, trained=True, data=info.data)
    paths = [e.path for e in load_examples(args.check)]
    full, half, bf16 = (np.stack([embedder.embed_file(p) for p in paths])
                        for embedder in (Embedder(args.model, precision="fp32"), Embedder(candidate, precision="fp32"),
                                         Embedder(candidate, precision="bf16")))
    report = {"model_id": shipped.model_id, "source": str(args.model), "images": len(paths),
              "top10_overlap_fp16_vs_fp32": round(overlap(full, half), 4),
              "top10_overlap_fp16_bf16_inference_vs_fp32": round(overlap(full, bf16), 4),
              "bytes_fp32": args.model.stat().st_size, "bytes_fp16": candidate.stat().st_size}
    if report["top10_overlap_fp16_vs_fp32"] < args.min_overlap:
        candidate.unlink()
        print(json.dumps(report | {"shipped": False}))
        sys.exit(f"fp16 changes the rankings too much (top-10 overlap {report['top10_overlap_fp16_vs_fp32']} < {args.min_overlap})")
    candidate.replace(args.out)
    print(json.dumps(report | {"shipped": str(args.out)}))


if __name__ == "__main__":
    main()
