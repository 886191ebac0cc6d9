"""A small real multi-style corpus for the training benchmark (never committed).

Twelve emoji sets from the npm registry (@iconify-json/*), each drawn by a different
artist/studio, rendered from SVG with resvg-py: OUT/<set>/<subject>.png, the same subjects
in every set (as in the paper's Fig. 1: same subject, different styles). Each image is
cropped to its content and centred with the same margin, so framing does not give the set
away.   .venv/bin/pip install resvg-py && .venv/bin/python bench/fetch_emoji_styles.py
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

from PIL import Image

SETS = ("noto", "noto-v1", "twemoji", "openmoji", "fluent-emoji", "fluent-emoji-flat", "fluent-emoji-high-contrast",
        "emojione", "emojione-v1", "emojione-monotone", "fxemoji", "streamline-emojis")


def icons(package: str, workdir: Path) -> dict:
    name = subprocess.run(["npm", "pack", "--silent", f"@iconify-json/{package}"], cwd=workdir, capture_output=True,
                          text=True, check=True).stdout.strip().splitlines()[-1]
    with tarfile.open(workdir / name) as tar:
        return json.load(tar.extractfile("package/icons.json"))


def render(data: dict, icon: dict, side: int) -> Image.Image:
    import resvg_py

    width, height = icon.get("width", data.get("width", 16)), icon.get("height", data.get("height", 16))
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}">{icon["body"]}</svg>'
    png = resvg_py.svg_to_bytes(svg_string=svg, width=side * 2, height=side * 2, background="#ffffff")
    img = Image.open(io.BytesIO(bytes(png))).convert("RGB")
    box = Image.eval(img, lambda v: 255 - v).getbbox() or (0, 0, *img.size)  # content = not white
    content = img.crop(box)
    scale = side * 0.84 / max(content.size)
    content = content.resize((max(1, round(content.width * scale)), max(1, round(content.height * scale))), Image.LANCZOS)
    canvas = Image.new("RGB", (side, side), "white")
    canvas.paste(content, ((side - content.width) // 2, (side - content.height) // 2))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/emoji"))
    parser.add_argument("--subjects", type=int, default=120, help="subjects drawn in every set")
    parser.add_argument("--side", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = {name: icons(name, Path(tmp)) for name in SETS}
    shared = sorted(set.intersection(*(set(d["icons"]) for d in data.values())))
    subjects = shared[:: max(1, len(shared) // args.subjects)][: args.subjects]
    for name, d in data.items():
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            render(d, d["icons"][subject], args.side).save(folder / f"{subject}.png")
    print(f"{len(SETS)} sets x {len(subjects)} shared subjects ({len(shared)} available) in {args.out}")


if __name__ == "__main__":
    main()
