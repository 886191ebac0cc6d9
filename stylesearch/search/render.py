"""Results people can look at: contact sheets (PNG), a self-contained HTML gallery, and a
2-D style map (HTML with zoom/pan, and PNG). Thumbnails come through `imaging`, so archive
covers and odd formats look the same here as in search; unreadable files get a grey tile.
"""

from __future__ import annotations

import base64
import colorsys
import functools
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..errors import ImageLoadError
from ..formats import shown
from ..imaging import load_image


@dataclass(frozen=True)
class Tile:
    path: str
    caption: str  # e.g. "#3  0.4213" or "query"


def thumbnail(path: str, side: int) -> Image.Image:
    """The file as a side x side thumbnail on white; a grey tile if it cannot be read."""
    canvas = Image.new("RGB", (side, side), "white")
    try:
        img = ImageOps.contain(load_image(path, side), (side, side))
    except ImageLoadError:
        canvas.paste((200, 200, 200), (0, 0, side, side))
        ImageDraw.Draw(canvas).text((8, side // 2 - 6), "unreadable", fill="black", font=_font(12))
        return canvas
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas


def short_name(path: str) -> str:
    """folder/file: enough to tell works apart at a glance (full paths are in the HTML)."""
    return shown(os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path)))


@functools.cache
def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans where the system has it (accented, Greek and Cyrillic names), else
    Pillow's built-in font, which draws only ASCII."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """Shorten from the left (keep the file name's end) until the text fits."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("…" + text, font=font) > width:
        text = text[1:]
    return "…" + text


def contact_sheet(tiles: list[Tile], out: Path, title: str, *, columns: int = 5, side: int = 200) -> None:
    """A grid of thumbnails with caption and file name under each, title on top."""
    columns = max(1, min(columns, len(tiles) or 1))
    rows = max(1, -(-len(tiles) // columns))
    pad, text_h, head = 10, 34, 40
    sheet = Image.new("RGB", (pad + columns * (side + pad), head + rows * (side + text_h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    big, small = _font(18), _font(12)
    draw.text((pad, 10), _fit(draw, shown(title), sheet.width - 2 * pad, big), fill="black", font=big)
    if not tiles:
        draw.text((pad, head + 10), "no results", fill="gray", font=small)
    for i, tile in enumerate(tiles):
        x, y = pad + (i % columns) * (side + pad), head + (i // columns) * (side + text_h + pad)
        sheet.paste(thumbnail(tile.path, side), (x, y))
        draw.rectangle((x - 1, y - 1, x + side, y + side), outline=(210, 210, 210))
        draw.text((x, y + side + 3), _fit(draw, tile.caption, side, small), fill="black", font=small)
        draw.text((x, y + side + 18), _fit(draw, short_name(tile.path), side, small), fill=(90, 90, 90), font=small)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def _data_uri(path: str, side: int) -> str:
    buf = io.BytesIO()
    thumbnail(path, side).save(buf, "JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 12px; background: #fafafa; color: #222; }}
h1 {{ font-size: 1.2em; overflow-wrap: anywhere; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 12px; }}
figure {{ margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 6px; }}
figure img {{ width: 100%; height: auto; display: block; }}
figcaption {{ font-size: 0.85em; overflow-wrap: anywhere; }}
figcaption b {{ display: block; }}
.empty {{ color: #777; }}
</style></head><body>
<h1>{title}</h1>
{body}
</body></html>
"""


def html_gallery(tiles: list[Tile], out: Path, title: str, *, side: int = 240) -> None:
    """A self-contained page (thumbnails embedded), readable offline and on a phone."""
    figures = [
        f'<figure><a href="{html.escape(Path(t.path).absolute().as_uri())}"><img alt="{html.escape(shown(os.path.basename(t.path)))}" '
        f'src="{_data_uri(t.path, side)}"></a><figcaption><b>{html.escape(t.caption)}</b>{html.escape(shown(t.path))}</figcaption></figure>'
        for t in tiles
    ]
    body = f'<div class="grid">{"".join(figures)}</div>' if figures else '<p class="empty">no results</p>'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_PAGE.format(title=html.escape(shown(title)), body=body), encoding="utf-8")


# --- the style map -------------------------------------------------------------------------


def layout(vectors: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D positions in [0, 1] and the method used: t-SNE up to 5,000 works (auto), PCA beyond
    (t-SNE is O(n log n) but minutes at that size on a laptop); "none" for one or two works."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method == "auto":
        method = "tsne" if len(vectors) <= 5000 else "pca"
    if len(vectors) < 3:
        xy, method = np.array([[0.0, 0.0], [1.0, 1.0]][: len(vectors)]), "none"
    elif method == "tsne":
        xy = TSNE(perplexity=min(30.0, (len(vectors) - 1) / 3), init="pca", random_state=seed).fit_transform(vectors)
    else:
        xy = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    span = np.maximum(np.ptp(xy, axis=0), 1e-9)
    return (xy - xy.min(0)) / span, method


def palette(groups: list[str]) -> dict[str, str]:
    names = sorted(set(groups))
    rgb = {name: colorsys.hsv_to_rgb(i / max(len(names), 1), 0.75, 0.85) for i, name in enumerate(names)}
    return {name: "#" + "".join(f"{int(255 * c):02x}" for c in value) for name, value in rgb.items()}


_MAP_SCRIPT = """
const view = document.getElementById('view'), map = document.getElementById('map');
let scale = Math.min(view.clientWidth / map.offsetWidth, view.clientHeight / map.offsetHeight, 1), x = 0, y = 0, drag = null;
function apply() { map.style.transform = `translate(${x}px, ${y}px) scale(${scale})`; }
apply();  // start with the whole map in view
view.addEventListener('wheel', e => { e.preventDefault();
  const f = e.deltaY < 0 ? 1.15 : 1 / 1.15, r = view.getBoundingClientRect();
  const px = e.clientX - r.left, py = e.clientY - r.top;
  x = px - (px - x) * f; y = py - (py - y) * f; scale *= f; apply(); }, {passive: false});
view.addEventListener('pointerdown', e => { drag = [e.clientX - x, e.clientY - y]; view.setPointerCapture(e.pointerId); });
view.addEventListener('pointermove', e => { if (drag) { x = e.clientX - drag[0]; y = e.clientY - drag[1]; apply(); } });
view.addEventListener('pointerup', () => { drag = null; });
"""


def map_html(paths: list[str], xy: np.ndarray, groups: list[str], out: Path, title: str, *, side: int = 48) -> None:
    """Thumbnails at their map positions; wheel to zoom, drag to pan, hover for the path."""
    colours = palette(groups)
    extent = max(800, int(np.sqrt(len(paths)) * side * 1.6))
    items = [
        f'<img class="t" style="left:{px * extent:.0f}px;top:{py * extent:.0f}px;border-color:{colours[g]}" '
        f'title="{html.escape(shown(p))}" src="{_data_uri(p, side)}">'
        for p, (px, py), g in zip(paths, xy, groups, strict=True)
    ]
    legend = "".join(f'<span><i style="background:{c}"></i>{html.escape(shown(g))}</span>' for g, c in colours.items()) if len(colours) > 1 else ""
    body = f"""<style>
#view {{ position: relative; width: 100%; height: 80vh; overflow: hidden; border: 1px solid #ccc; background: #fff; touch-action: none; }}
#map {{ position: absolute; transform-origin: 0 0; width: {extent + side}px; height: {extent + side}px; }}
.t {{ position: absolute; width: {side}px; height: {side}px; border: 2px solid; border-radius: 3px; }}
.legend span {{ margin-right: 12px; font-size: 0.85em; white-space: nowrap; }}
.legend i {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
</style>
<p class="legend">{legend}</p><p>{len(paths)} works. Scroll to zoom, drag to move, hover a thumbnail for its path.</p>
<div id="view"><div id="map">{"".join(items)}</div></div>
<script>{_MAP_SCRIPT}</script>"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_PAGE.format(title=html.escape(shown(title)), body=body), encoding="utf-8")


def map_png(paths: list[str], xy: np.ndarray, groups: list[str], out: Path, title: str, *, side: int = 40) -> None:
    colours = palette(groups)
    size = int(min(2400, max(600, np.sqrt(len(paths)) * side * 2.5)))
    legend_h = 22 * (len(colours) if len(colours) > 1 else 0)
    margin, head = 10, 40  # the margin keeps the outermost thumbnails' frames on the canvas
    img = Image.new("RGB", (size + side + 2 * margin, head + size + side + margin + legend_h), "white")
    draw = ImageDraw.Draw(img)
    draw.text((margin, 10), shown(title), fill="black", font=_font(18))
    for path, (px, py), group in zip(paths, xy, groups, strict=True):
        x, y = margin + int(px * size), head + int(py * size)
        img.paste(thumbnail(path, side), (x, y))
        draw.rectangle((x - 1, y - 1, x + side, y + side), outline=colours[group], width=2)
    if len(colours) > 1:
        for i, (group, colour) in enumerate(colours.items()):
            y = head + size + side + margin + 5 + 22 * i
            draw.rectangle((10, y, 24, y + 14), fill=colour)
            draw.text((30, y), shown(group), fill="black", font=_font(14))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
