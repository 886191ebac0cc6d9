"""Make the committed style-check images (our own drawings; no third-party art).

    .venv/bin/python tests/data/style_check/make.py

Six simple subjects drawn here with PIL (face, house, tree, fish, cup, star), each re-drawn
by three fixed "artists" of models/recipe/synthetic_artists.py that share one natural
palette, so colour alone does not tell them apart: inked flat colour, halftone without
lines, and sketchy sepia line art with cel shading. tests/test_bundled_model.py checks that
the shipped model groups them by artist. Output: <artist>-<subject>.png, 96 px.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "models" / "recipe"))

from synthetic_artists import Artist, draw_artist, render  # noqa: E402

SIDE = 96


def subject(name: str) -> Image.Image:
    img = Image.new("RGB", (256, 256), "white")
    d = ImageDraw.Draw(img)
    if name == "face":
        d.ellipse((48, 40, 208, 220), fill=(240, 200, 160))
        d.ellipse((90, 100, 112, 122), fill=(60, 90, 160))
        d.ellipse((144, 100, 166, 122), fill=(60, 90, 160))
        d.arc((96, 140, 160, 190), 20, 160, fill=(180, 60, 60), width=8)
        d.pieslice((44, 20, 212, 120), 180, 360, fill=(120, 70, 30))
    elif name == "house":
        d.rectangle((60, 120, 196, 230), fill=(220, 190, 120))
        d.polygon([(40, 124), (128, 40), (216, 124)], fill=(180, 50, 40))
        d.rectangle((110, 170, 146, 230), fill=(110, 70, 40))
        d.rectangle((74, 140, 100, 164), fill=(150, 200, 230))
    elif name == "tree":
        d.rectangle((112, 150, 144, 236), fill=(120, 80, 40))
        d.ellipse((50, 30, 206, 180), fill=(60, 150, 60))
        d.ellipse((80, 60, 130, 110), fill=(100, 190, 90))
    elif name == "fish":
        d.ellipse((40, 80, 190, 180), fill=(240, 150, 40))
        d.polygon([(180, 130), (236, 80), (236, 180)], fill=(220, 110, 30))
        d.ellipse((70, 112, 90, 132), fill=(30, 30, 30))
    elif name == "cup":
        d.rectangle((70, 80, 170, 210), fill=(230, 230, 240))
        d.arc((150, 110, 220, 180), 270, 90, fill=(200, 200, 215), width=14)
        d.rectangle((70, 80, 170, 100), fill=(120, 70, 40))
    else:  # star
        points = [(128, 20), (156, 100), (240, 100), (172, 150), (198, 232), (128, 182), (58, 232), (84, 150), (16, 100),
                  (100, 100)]
        d.polygon(points, fill=(250, 210, 50))
        d.ellipse((108, 110, 148, 150), fill=(240, 150, 40))
    return img


SUBJECTS = ("face", "house", "tree", "fish", "cup", "star")


def artists() -> dict[str, Artist]:
    base = replace(draw_artist(0, 0), palette="natural", hue_shift=0.0, saturation=1.0, paper=(1.0, 1.0, 1.0), grain=0.0,
                   blur=0.0, posterise=0)
    return {
        "inked": replace(base, name="check/0-00001", fill="flat", outline=True, line_width=3.5, line_colour="black",
                         line_quality="clean"),
        "halftone": replace(base, name="check/0-00002", fill="halftone", outline=False, pattern_angle=0.6,
                            pattern_spacing=4.0),
        "sketch": replace(base, name="check/0-00003", fill="cel", tones=2, light_angle=0.8, outline=True, line_width=1.2,
                          line_colour="sepia", line_quality="sketchy", jitter=1.5),
    }


def main() -> None:
    for style, artist in artists().items():
        for i, name in enumerate(SUBJECTS):
            render(subject(name), artist, i, SIDE).save(HERE / f"{style}-{name}.png", optimize=True)
    print(f"wrote {3 * len(SUBJECTS)} images to {HERE}")


if __name__ == "__main__":
    main()
