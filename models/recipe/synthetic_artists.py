"""Synthetic artists: re-draw the same subjects under thousands of random rendering styles.

    .venv/bin/python models/recipe/synthetic_artists.py --bases corpus/emoji/twemoji corpus/icons/Tango \\
        --out synthetic/ --artists 1000 --subjects 12 [--sheet sheet.png]

Why: the bundled model must learn what makes a *style* (line weight, shading, palette,
texture) from few real artists; a few dozen real styles are not enough to generalise (issue
10). Here an "artist" is one fixed bundle of rendering choices, drawn from a seed, applied to
every subject it draws, so the same subject appears under many artists as in the paper's
Fig. 1. Label = artist id.

Bases are flat renders on white (the corpus recipe's output). Each base is split into colour
regions (median-cut quantisation) inside its silhouette; an artist then re-renders it:

- palette: natural (hue shift, saturation scale), limited (every region snapped to 3-6 drawn
  colours) or monochrome ink; `--hue-shift` bounds the natural palettes' hue turn (0.5, the
  default: anywhere on the colour circle, as the CNN was trained; 0: the bases' own hues, as
  version 13's fused map was fitted, since a real set's hues mostly follow its subjects);
- fill: flat, none (line art), gradient, cel shading (2-4 tones), hatching, cross-hatching,
  halftone dots, screentone (manga);
- outline: off, or on with width 0.6-4 px and colour (black, sepia, navy, darkened fill);
  line quality clean, sketchy (jittered, repeated), doubled or tapered;
- paper colour and grain; blur; posterisation.

Everything is deterministic given --seed (artists) and the sorted base files (subjects).
Writes OUT/synthetic/<seed>-<index>/<subject>.png, OUT/labels.csv (path, artist =
synthetic/<seed>-<index>, so `--balance source` can mix them evenly with real sources) and
OUT/artists.json (every artist's parameters).
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import json
import multiprocessing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

FILLS = ("flat", "none", "gradient", "cel", "hatch", "crosshatch", "halftone", "screentone")
PALETTES = ("natural", "limited", "mono")
LINES = ("clean", "sketchy", "doubled", "tapered")
INKS = {"black": (0.05, 0.05, 0.05), "sepia": (0.30, 0.18, 0.08), "navy": (0.08, 0.10, 0.30)}


@dataclass(frozen=True)
class Artist:
    """One synthetic artist: every choice that stays fixed across the subjects it draws."""

    name: str
    fill: str
    tones: int
    light_angle: float
    palette: str
    hue_shift: float
    saturation: float
    colours: tuple[tuple[float, float, float], ...]
    outline: bool
    line_width: float
    line_colour: str
    line_quality: str
    jitter: float
    pattern_angle: float
    pattern_spacing: float
    paper: tuple[float, float, float]
    grain: float
    blur: float
    posterise: int


def draw_artist(index: int, seed: int, hue_shift: float = 0.5) -> Artist:
    """Artist `index` of `seed`; a natural palette turns every hue by up to +-`hue_shift` of
    the colour circle (0.5: anywhere; 0: the bases' own hues). The same draws for any
    `hue_shift`, so artists differ only there."""
    rng = np.random.default_rng([seed, index])
    fill = FILLS[rng.integers(len(FILLS))]
    palette = PALETTES[rng.choice(3, p=(0.55, 0.3, 0.15))]
    # line art needs an outline, otherwise nothing is drawn
    outline = bool(fill == "none" or rng.random() < 0.7)
    colours = tuple(tuple(float(c) for c in colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.35, 1)))
                    for _ in range(int(rng.integers(3, 7))))
    paper_hue, paper_tint = rng.random(), rng.choice([0.0, 0.04, 0.1], p=(0.5, 0.3, 0.2))
    return Artist(
        name=f"synthetic/{seed}-{index:05d}", fill=fill, tones=int(rng.integers(2, 5)),
        light_angle=float(rng.uniform(0, 2 * np.pi)), palette=palette, hue_shift=float(rng.uniform(-0.5, 0.5) * 2 * hue_shift),
        saturation=float(rng.uniform(0.3, 1.5)), colours=colours, outline=outline,
        line_width=float(rng.uniform(0.6, 4.0)), line_colour=str(rng.choice([*INKS, "dark"])),
        line_quality=LINES[rng.choice(4, p=(0.4, 0.25, 0.15, 0.2))], jitter=float(rng.uniform(0.3, 2.5)),
        pattern_angle=float(rng.uniform(0, np.pi)), pattern_spacing=float(rng.uniform(3, 7)),
        paper=tuple(float(c) for c in colorsys.hsv_to_rgb(paper_hue, paper_tint, rng.uniform(0.9, 1.0))),
        grain=float(rng.choice([0.0, rng.uniform(0.01, 0.06)])), blur=float(rng.choice([0.0, rng.uniform(0.3, 1.2)], p=(0.7, 0.3))),
        posterise=int(rng.choice([0, 3, 4, 6], p=(0.7, 0.1, 0.1, 0.1))),
    )


def split_regions(base: Image.Image, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Base render -> (rgb float HxWx3, luminance, region labels, silhouette mask)."""
    img = base.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
    rgb = np.asarray(img, dtype=np.float32) / 255
    mask = ndimage.binary_fill_holes(rgb.min(axis=2) < 0.94)
    labels = np.asarray(img.quantize(8, method=Image.Quantize.MEDIANCUT), dtype=np.int32)
    labels = np.where(mask, labels, -1)
    return rgb, rgb @ np.array([0.299, 0.587, 0.114], np.float32), labels, mask


def region_colours(rgb: np.ndarray, labels: np.ndarray, artist: Artist) -> np.ndarray:
    """Flat colour per region after the artist's palette choice, painted back into HxWx3."""
    out = np.zeros_like(rgb)
    for label in np.unique(labels[labels >= 0]):
        where = labels == label
        r, g, b = rgb[where].mean(axis=0)
        if artist.palette == "mono":
            v = 0.3 * r + 0.59 * g + 0.11 * b
            colour = np.asarray(INKS["black"]) * (1 - v) + np.asarray(artist.paper) * v
        elif artist.palette == "limited":
            choices = np.asarray(artist.colours)
            colour = choices[np.argmin(((choices - (r, g, b)) ** 2).sum(1))]
        else:
            h, s, v = colorsys.rgb_to_hsv(r, g, b)
            colour = colorsys.hsv_to_rgb((h + artist.hue_shift) % 1, min(1.0, s * artist.saturation), v)
        out[where] = colour
    return out


def coordinates(side: int, angle: float) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    return x * np.cos(angle) + y * np.sin(angle)


def shade(colour: np.ndarray, lum: np.ndarray, mask: np.ndarray, artist: Artist) -> np.ndarray:
    """The fill: how regions are coloured and shaded inside the silhouette."""
    side = mask.shape[0]
    ramp = coordinates(side, artist.light_angle)
    ramp = (ramp - ramp[mask].min()) / max(float(np.ptp(ramp[mask])), 1.0) if mask.any() else ramp
    light = np.clip(0.5 * lum + 0.5 * (1 - ramp), 0, 1)  # the base's own shading plus a directional light
    paper = np.broadcast_to(np.asarray(artist.paper, np.float32), colour.shape)
    ink = np.asarray(INKS["black"], np.float32)
    darkness = 1 - (colour @ np.array([0.299, 0.587, 0.114], np.float32)) * (0.5 + 0.5 * light)
    if artist.fill == "flat":
        return colour
    if artist.fill == "none":
        return paper.copy()
    if artist.fill == "gradient":
        return colour * (0.55 + 0.45 * light[..., None])
    if artist.fill == "cel":
        steps = np.floor(light * artist.tones).clip(0, artist.tones - 1) / max(artist.tones - 1, 1)
        return colour * (0.5 + 0.5 * steps[..., None])
    u = coordinates(side, artist.pattern_angle) / artist.pattern_spacing
    if artist.fill in ("hatch", "crosshatch"):
        lines = np.abs(np.sin(np.pi * u)) < darkness
        if artist.fill == "crosshatch":
            v = coordinates(side, artist.pattern_angle + np.pi / 2) / artist.pattern_spacing
            lines |= (np.abs(np.sin(np.pi * v)) < darkness - 0.35)
        base = colour * 0.35 + paper * 0.65 if artist.palette != "mono" else paper
        return np.where(lines[..., None], ink, base)
    v = coordinates(side, artist.pattern_angle + np.pi / 2) / artist.pattern_spacing
    cell = np.hypot(u - np.round(u), v - np.round(v))  # distance to the nearest dot centre, in cells
    if artist.fill == "halftone":
        dots = cell < 0.5 * np.sqrt(np.clip(darkness, 0, 1))
        return np.where(dots[..., None], colour * 0.6, paper)
    # screentone: one fixed dot size, laid on the darker regions only (manga)
    dots = (cell < 0.3) & (darkness > 0.45)
    return np.where(dots[..., None], ink, paper)


def line_mask(labels: np.ndarray, artist: Artist, rng: np.random.Generator) -> np.ndarray:
    """Outline coverage in [0, 1]: region and silhouette borders drawn with the artist's hand."""
    edges = np.zeros(labels.shape, bool)
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edges[1:, :] |= labels[1:, :] != labels[:-1, :]
    side = labels.shape[0]

    def stroke(amplitude: float, width: float) -> np.ndarray:
        field = [ndimage.gaussian_filter(rng.standard_normal((side, side)), 4) * 4 * amplitude for _ in range(2)]
        y, x = np.mgrid[0:side, 0:side].astype(np.float32)
        moved = ndimage.map_coordinates(edges.astype(np.float32), [y + field[0], x + field[1]], order=1) > 0.3
        distance = ndimage.distance_transform_edt(~moved)
        if artist.line_quality == "tapered":
            width = width * (0.3 + 1.4 * np.clip(0.5 + ndimage.gaussian_filter(rng.standard_normal((side, side)), 6) * 6, 0, 1))
        return np.clip(width / 2 + 0.5 - distance, 0, 1)

    if artist.line_quality == "sketchy":
        return np.clip(sum(stroke(artist.jitter, artist.line_width * 0.6) * 0.6 for _ in range(3)), 0, 1)
    if artist.line_quality == "doubled":
        return np.maximum(stroke(0.3, artist.line_width * 0.7), stroke(artist.jitter + 1, artist.line_width * 0.5))
    return stroke(0.15 if artist.line_quality == "clean" else 0.3, artist.line_width)


def render(base: Image.Image, artist: Artist, subject_seed: int, side: int = 128) -> Image.Image:
    """One subject drawn by one artist (line randomness varies per subject, choices don't)."""
    rng = np.random.default_rng([subject_seed, int(artist.name.rsplit("-", 1)[1])])
    rgb, lum, labels, mask = split_regions(base, side)
    colour = region_colours(rgb, labels, artist)
    out = np.where(mask[..., None], shade(colour, lum, mask, artist), np.asarray(artist.paper, np.float32))
    if artist.outline:
        cover = line_mask(labels, artist, rng)[..., None]
        ink = colour * 0.35 if artist.line_colour == "dark" else np.asarray(INKS[artist.line_colour], np.float32)
        out = out * (1 - cover) + ink * cover
    if artist.grain:
        out = out + ndimage.gaussian_filter(rng.standard_normal((side, side)), 0.7)[..., None] * artist.grain
    if artist.blur:
        out = ndimage.gaussian_filter(out, (artist.blur, artist.blur, 0))
    if artist.posterise:
        out = np.round(out * (artist.posterise - 1)) / (artist.posterise - 1)
    return Image.fromarray((np.clip(out, 0, 1) * 255).round().astype(np.uint8))


def bases_from(folders: list[Path]) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.png"))


def draw_subjects(job: tuple[list[Path], Path, int, int, int, int, float]) -> tuple[dict, list[tuple[str, str]]]:
    """One artist draws `subjects` bases chosen from its own seed: (its parameters, CSV rows)."""
    bases, out, index, subjects, seed, side, hue_shift = job
    artist = draw_artist(index, seed, hue_shift)
    chosen = np.random.default_rng([seed, index, 1]).choice(len(bases), size=min(subjects, len(bases)), replace=False)
    folder = out / artist.name
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in sorted(chosen):
        target = folder / f"{bases[i].parent.name}-{bases[i].stem}.png"
        with Image.open(bases[i]) as base:
            render(base, artist, int(i), side).save(target, optimize=True)
        rows.append((str(target.relative_to(out)), artist.name))
    return asdict(artist), rows


def generate(bases: list[Path], out: Path, artists: int, subjects: int, seed: int, side: int, workers: int = 1,
             hue_shift: float = 0.5) -> int:
    """Every artist's drawings (in `workers` processes; the output does not depend on how
    many); returns images written."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(bases, out, index, subjects, seed, side, hue_shift) for index in range(artists)]
    if workers > 1:
        with multiprocessing.Pool(workers) as pool:
            drawn = pool.map(draw_subjects, jobs, chunksize=16)
    else:
        drawn = [draw_subjects(job) for job in jobs]
    rows = [row for _, artist_rows in drawn for row in artist_rows]
    with open(out / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("path", "artist"), *rows])
    (out / "artists.json").write_text(json.dumps({"seed": seed, "side": side, "hue_shift": hue_shift, "bases": [str(b) for b in bases],
                                                  "artists": [params for params, _ in drawn]}, indent=1))
    return len(rows)


def contact_sheet(bases: list[Path], artists: int, seed: int, side: int, subjects: list[int]) -> Image.Image:
    """Rows = artists, columns = the same subjects: what the generator varies, at a glance."""
    sheet = Image.new("RGB", (side * len(subjects), side * artists), "white")
    for row in range(artists):
        artist = draw_artist(row, seed)
        for col, i in enumerate(subjects):
            with Image.open(bases[i]) as base:
                sheet.paste(render(base, artist, i, side), (col * side, row * side))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bases", type=Path, nargs="+", required=True, help="folders of flat base renders (PNG)")
    parser.add_argument("--out", type=Path, help="output folder for the training set")
    parser.add_argument("--artists", type=int, default=1000)
    parser.add_argument("--subjects", type=int, default=12, help="subjects each artist draws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1, help="drawing processes (the output is the same for any number)")
    parser.add_argument("--sheet", type=Path, help="also write a contact sheet (8 artists x 6 subjects) here")
    parser.add_argument("--hue-shift", type=float, default=0.5,
                        help="natural palettes turn hues by up to this share of the colour circle (0 to 0.5)")
    args = parser.parse_args()
    if not 0 <= args.hue_shift <= 0.5:
        parser.error(f"--hue-shift: from 0 to 0.5 (got {args.hue_shift})")
    bases = bases_from(args.bases)
    if not bases:
        parser.error("no PNG bases found")
    if args.out:
        written = generate(bases, args.out, args.artists, args.subjects, args.seed, args.side, args.workers, args.hue_shift)
        print(f"wrote {written} images to {args.out}")
    if args.sheet:
        picks = list(np.linspace(0, len(bases) - 1, 6).astype(int))
        contact_sheet(bases, 8, args.seed, args.side, picks).save(args.sheet, optimize=True)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
