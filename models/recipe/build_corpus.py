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
- iconsets: @iconify-json UI and illustration icon sets from npm (colour and one-colour):
  the same everyday concepts (home, camera, heart ...) drawn by each set's designers.
- icons: 15 freedesktop icon themes from Debian (`apt-get download` + `dpkg-deb -x`): the
  same icon names (folder, user-home, edit-copy ...) drawn by each theme's artists.
- chess: the piece sets of Debian's pychess (the same 12 pieces per set).
- knights: the chess themes of Debian's knights (one SVG per theme, a piece per element id).
- mahjongg: the tile sets of Debian's kdegames-mahjongg-data-kf5 (the same 42 tile faces per set,
  a face per element id).
- openclipart: Debian's openclipart-svg, labelled by each drawing's creator (dc:creator in
  the SVG): different subjects per artist, the closest to the paper's Danbooru setting.
- fonts: typefaces from Debian font packages, the same short texts set in each family's
  regular face: line quality alone (stroke contrast, serifs, terminals, handwriting).
Reserved for independent evaluation and never used: playing-card decks and DiceBear avatars.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import importlib.metadata
import io
import json
import math
import re
import shutil
import subprocess
import tarfile
import tempfile
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

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
# @iconify-json UI and illustration sets, one per design family (a family's near-identical
# releases such as fa6/fa7 or bx/boxicons give one set); "-color" sets and the like are in colour
ICON_SETS = (
    "streamline-ultimate-color", "streamline-plump-color", "streamline-freehand-color", "streamline-kameleon-color",
    "streamline-stickies-color", "streamline-flex-color", "streamline-sharp-color", "streamline-cyber-color",
    "streamline-color", "fluent-color", "icon-park", "marketeq", "flat-color-icons", "meteocons", "flat-ui",
    "solar", "tabler", "mingcute", "ri", "iconoir", "lucide", "uil", "majesticons", "pixelarticons",
    "akar-icons", "typcn", "humbleicons", "ph", "clarity", "streamline-freehand", "octicon", "heroicons",
    "pepicons-pencil", "pepicons-pop", "carbon", "ion", "ant-design", "bi", "mdi", "game-icons", "healthicons", "la",
    "entypo", "fa6-solid", "fontisto", "simple-line-icons", "feather", "icon-park-outline", "teenyicons",
    "hugeicons", "dinkie-icons", "basil", "iconamoon", "system-uicons", "zondicons", "bx", "eva", "jam", "gg",
)
ICONSET_IMAGES = 36  # per set: enough drawings of one look, without one set outweighing the others
# everyday concepts and their usual spellings in icon sets (first spelling found wins)
ICON_CONCEPTS = {
    "home": ("home", "house"), "search": ("search", "magnifier", "magnifying-glass", "zoom"),
    "user": ("user", "person", "account", "profile"), "settings": ("settings", "gear", "cog", "setting"),
    "heart": ("heart", "love"), "star": ("star",), "camera": ("camera", "photo-camera"), "mail": ("mail", "email", "envelope", "letter"),
    "bell": ("bell", "notification"), "calendar": ("calendar", "date"), "trash": ("trash", "delete", "bin", "garbage"),
    "lock": ("lock", "padlock"), "cloud": ("cloud",), "download": ("download",), "upload": ("upload",),
    "pencil": ("pencil", "edit", "pen"), "book": ("book",), "bookmark": ("bookmark",), "chat": ("chat", "message", "comment"),
    "clock": ("clock", "time", "watch"), "folder": ("folder",), "file": ("file", "document"), "image": ("image", "picture", "photo"),
    "music": ("music", "music-note", "note"), "phone": ("phone", "call", "telephone"), "map": ("map",), "globe": ("globe", "world", "earth"),
    "link": ("link", "chain"), "flag": ("flag",), "gift": ("gift", "present"), "key": ("key",), "bulb": ("bulb", "lightbulb", "light-bulb", "idea"),
    "sun": ("sun", "sunny"), "moon": ("moon",), "car": ("car", "automobile"), "cart": ("cart", "shopping-cart", "basket"),
    "printer": ("printer", "print"), "play": ("play",), "microphone": ("microphone", "mic"), "video": ("video", "film", "movie"),
    "wifi": ("wifi", "wireless"), "battery": ("battery",), "umbrella": ("umbrella",), "coffee": ("coffee", "cup", "mug"),
    "fire": ("fire", "flame"), "leaf": ("leaf", "plant"), "tree": ("tree",), "paperclip": ("paperclip", "attachment", "clip"),
    "scissors": ("scissors", "cut"), "tag": ("tag", "label"), "trophy": ("trophy", "award", "cup-trophy"), "rocket": ("rocket",),
    "eye": ("eye", "view"), "shield": ("shield",), "smile": ("smile", "emoji", "happy", "face-smile", "mood-smile"),
    "airplane": ("airplane", "plane", "flight"), "bicycle": ("bicycle", "bike"), "truck": ("truck",), "bag": ("bag", "shopping-bag"),
    "wallet": ("wallet",), "pin": ("pin", "location", "map-pin", "marker"), "headphones": ("headphones", "headset"),
    "compass": ("compass",), "anchor": ("anchor",), "crown": ("crown",), "diamond": ("diamond", "gem"), "dog": ("dog",), "cat": ("cat",),
}
ICON_SUFFIX = r"(-(outline|outlined|line|linear|bold|solid|fill|filled|regular|light|thin|duotone|broken|rounded|round|sharp|o|alt|flat|duo|\d+))*"


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


PX_PER_UNIT = {"mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0, "pt": 96 / 72, "pc": 16.0, "px": 1.0}


def _px(match: re.Match) -> str:
    """A root width/height in CSS pixels: resvg-py rejects physical units (old Inkscape's
    '210mm'); a percentage is dropped so the viewBox decides."""
    name, _, value, unit = match.groups()
    return "" if unit == "%" else f'{name}="{float(value) * PX_PER_UNIT[unit]:.2f}"'


def in_pixels(text: str) -> str:
    """The SVG with its root width/height in CSS pixels (see _px)."""
    if root := re.search(r"<svg\b[^>]*>", text):
        # whole attributes only (not stroke-width), in either quote style
        tag = re.sub(r'(?<=\s)(width|height)\s*=\s*(["\'])\s*([\d.]+)\s*(mm|cm|in|pt|pc|px|%)\s*\2', _px, root.group(0))
        text = text[: root.start()] + tag + text[root.end():]
    return text


def svg_image(svg: str | bytes, side: int) -> Image.Image:
    import resvg_py

    text = in_pixels(svg.decode("utf-8", "replace") if isinstance(svg, bytes) else svg)
    png = resvg_py.svg_to_bytes(svg_string=text, width=side * 2, height=side * 2)
    return Image.open(io.BytesIO(bytes(png)))


SVG_NS, XLINK_NS = "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"
NOT_DRAWN = {f"{{{SVG_NS}}}{tag}" for tag in ("defs", "symbol", "style")}  # kept whole: drawn only where used
REFERENCE = re.compile(r"url\(#([^)]+)\)")
MAX_CANVAS = 2048  # svg_image draws at twice this: a 4,096-pixel canvas at most


def _references(element: ET.Element) -> set[str]:
    """Ids that `element` or anything below it uses (<use> links, url(#...) paints and filters)."""
    found = set()
    for node in element.iter():
        for name, value in node.attrib.items():
            if name in ("href", f"{{{XLINK_NS}}}href") and value.startswith("#"):
                found.add(value[1:])
            found.update(REFERENCE.findall(value))
    return found


def element_svg(svg: bytes, element_id: str) -> bytes:
    """A game theme's SVG (every piece or tile face in one file, each under its id) cut down
    to one element: the element, its ancestors (for their transforms), the definitions, and
    whatever it uses from elsewhere, moved into the definitions (where a <use> still finds
    it: a used element is drawn without its old ancestors' transforms anyway). Rendered and
    passed through `centred`, it is that element alone, cropped to it."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    root = ET.fromstring(svg)
    by_id = {node.get("id"): node for node in root.iter() if node.get("id")}
    target = by_id.get(element_id)
    if target is None:
        raise ValueError(f"no element {element_id!r}")
    parents = {child: parent for parent in root.iter() for child in parent}

    def lineage(node: ET.Element) -> list[ET.Element]:  # the node and its ancestors, the root left out
        found = []
        while node is not root:
            found.append(node)
            node = parents[node]
        return found

    path = lineage(target)
    if any(node.tag in NOT_DRAWN for node in path):
        raise ValueError(f"{element_id!r} is a definition, not drawn")
    inside = set(target.iter())
    used, todo, seen = [], _references(target), set()
    while todo:  # what the element uses from outside it, and what that uses in turn
        name = todo.pop()
        node = by_id.get(name)
        if name in seen or node is None or node in inside:
            continue
        seen.add(name)
        if not any(a.tag in NOT_DRAWN for a in lineage(node)):  # already a definition otherwise
            used.append(node)
        todo |= _references(node)
    kept = set(path)
    for parent in [root, *path[1:]]:
        for child in list(parent):
            if child not in kept and child.tag not in NOT_DRAWN:
                parent.remove(child)
    for node in path:  # an element in a hidden layer is still the theme's drawing
        if "display:none" in node.get("style", ""):
            node.set("style", node.get("style").replace("display:none", "display:inline"))
    if used:
        defs = ET.SubElement(root, f"{{{SVG_NS}}}defs")
        defs.extend(copy.deepcopy(node) for node in used)
    return ET.tostring(root)


def theme_elements(data: bytes, ids: list[str], folder: Path, side: int) -> int:
    """Each element of `ids` in one theme's SVG to FOLDER/<id>.png; returns how many rendered
    (an element missing, or drawing nothing that shows on white, is skipped: a set that draws
    white faces for a coloured tile, as KMahjongg's jade does, is left out that way)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for element_id in ids:
        try:
            svg = element_svg(data, element_id)
            # the element is a small part of the theme's canvas: a first rendering finds how
            # small, the second draws the canvas large enough for the element to fill `side`
            probe = svg_image(svg, side)
            box = probe.getchannel("A").getbbox()
            if box is None:
                continue
            extent = max(box[2] - box[0], box[3] - box[1]) / max(probe.size)
            img = svg_image(svg, min(MAX_CANVAS, math.ceil(side / extent)))
        except (ValueError, OSError, ET.ParseError):
            continue
        drawn = centred(img, side)
        if min(low for low, _ in drawn.getextrema()) == 255:  # nothing that shows on white (a white face)
            continue
        drawn.save(folder / f"{element_id.lower()}.png")
        written += 1
    return written


# --- emoji sets (npm) ----------------------------------------------------------------------


def iconify(name: str, work: Path) -> tuple[dict, str, dict]:
    """One @iconify-json set from npm: (icons.json, the packed file's name, info.json:
    author and licence)."""
    tgz = subprocess.run(["npm", "pack", "--silent", f"@iconify-json/{name}"], cwd=work, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    with tarfile.open(work / tgz) as tar:
        return json.load(tar.extractfile("package/icons.json")), tgz, json.load(tar.extractfile("package/info.json"))


def render_iconify(data: dict, icons: dict[str, str], folder: Path, side: int) -> None:
    """Each icon of `icons` (file stem -> icon name) rendered to FOLDER/<stem>.png; one-colour
    sets draw in currentColor, which resvg paints black."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, name in icons.items():
        icon = data["icons"][name]
        w, h = icon.get("width", data.get("width", 16)), icon.get("height", data.get("height", 16))
        svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}">{icon["body"]}</svg>'
        centred(svg_image(svg, side), side).save(folder / f"{stem}.png")


def _iconify_entry(source: str, name: str, tgz: str, info: dict, images: int) -> dict:
    licence = info.get("license", {})
    return {"source": source, "style": name, "package": f"npm @iconify-json/{name}", "version": tgz,
            "licence": licence.get("spdx") or licence.get("title"), "author": info.get("author", {}).get("name"),
            "images": images}


def emoji(out: Path, side: int, subjects: int, work: Path) -> list[dict]:
    data = {name: iconify(name, work) for name in EMOJI_SETS}
    shared = sorted(set.intersection(*(set(d["icons"]) for d, _, _ in data.values())))
    chosen = shared[:: max(1, len(shared) // subjects)][:subjects]
    manifest = []
    for name, (d, tgz, info) in data.items():
        render_iconify(d, {subject: subject for subject in chosen}, out / "emoji" / name, side)
        manifest.append(_iconify_entry("emoji", name, tgz, info, len(chosen)))
    return manifest


# --- UI and illustration icon sets (npm) -----------------------------------------------------


def _variant(suffix: str) -> str:
    """The look a name's suffix stands for: its variant words without numbers ('-1-flat' and
    '-flat' -> '-flat'; '-2' -> ''), since numbers tell drawings apart, not looks."""
    return re.sub(r"-\d+", "", suffix)


def set_icons(names: set[str], count: int) -> dict[str, str]:
    """file stem -> icon name for one set, `count` at most, all in the set's most common
    variant (the suffix: none, -outline, -bold ... that names the most concepts), so a set
    with several weights gives one look: first the everyday concepts, then other icons of
    that variant spread over the sorted names (sets that name few concepts their own way)."""
    found: dict[str, dict[str, str]] = {}  # suffix -> concept -> name
    for concept, spellings in ICON_CONCEPTS.items():
        for spelling in spellings:
            for name in sorted(n for n in names if n == spelling or n.startswith(spelling + "-")):
                suffix = name[len(spelling):]
                if re.fullmatch(ICON_SUFFIX, suffix):
                    found.setdefault(_variant(suffix), {}).setdefault(concept, name)
    best = max(sorted(found), key=lambda variant: len(found[variant])) if found else ""
    chosen = dict(list(found.get(best, {}).items())[:count])
    rest = sorted(n for n in names if _variant(re.search(ICON_SUFFIX + "$", n).group(0)) == best
                  and n not in chosen.values())
    step = max(1, len(rest) // max(1, count - len(chosen)))
    chosen.update((name, name) for name in rest[::step][: count - len(chosen)])
    return chosen


def iconsets(out: Path, side: int, subjects: int, work: Path) -> list[dict]:
    """UI and illustration icon sets: the same everyday concepts (home, camera, heart ...)
    drawn by each set's designers, `subjects` per set at most (36 with the default)."""
    manifest = []
    for name in ICON_SETS:
        d, tgz, info = iconify(name, work)
        chosen = set_icons(set(d["icons"]), min(subjects, ICONSET_IMAGES))
        render_iconify(d, chosen, out / "iconsets" / name, side)
        manifest.append(_iconify_entry("iconsets", name, tgz, info, len(chosen)))
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
            if line.startswith("License:") and (name := line.split(":", 1)[1].strip()):  # not a free-text licence's blank
                return name
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


# --- KDE game themes (Debian): knights' chess themes, mahjongg tile sets ----------------------

KNIGHTS_PIECES = tuple(f"{colour}{piece}" for colour in ("White", "Black")
                       for piece in ("King", "Queen", "Rook", "Bishop", "Knight", "Pawn"))
# Colin M. L. Burnett's pieces, which pychess ships as cburnett, and a grey rendering of them
KNIGHTS_DUPLICATES = {"plain", "gray"}
MAHJONGG_FACES = tuple([f"{suit}_{n}" for suit in ("CHARACTER", "BAMBOO", "ROD") for n in range(1, 10)]
                       + [f"{suit}_{n}" for suit in ("SEASON", "FLOWER", "WIND") for n in range(1, 5)]
                       + [f"DRAGON_{n}" for n in range(1, 4)])


def _themes(out: Path, side: int, source: str, package: str, folder: str, ids: tuple[str, ...], skip: set[str],
            work: Path) -> list[dict]:
    """Every FOLDER/*.svgz theme of a Debian game package, its elements `ids` rendered one by
    one (`theme_elements`) to OUT/<source>/<theme>/; a theme with fewer than half of them
    rendered is left out whole."""
    root, version, licence = debian([package], work)[package]
    manifest = []
    for path in sorted((root / folder).glob("*.svgz")):
        if path.stem in skip:
            continue
        target = out / source / path.stem
        written = theme_elements(gzip.decompress(path.read_bytes()), list(ids), target, side)
        if written < len(ids) / 2:
            shutil.rmtree(target)
            continue
        manifest.append({"source": source, "style": path.stem, "package": f"debian {package}", "version": version,
                         "licence": licence, "images": written})
    return manifest


def knights(out: Path, side: int, subjects: int, work: Path) -> list[dict]:
    """knights' chess themes: the same 12 pieces per theme (`subjects` does not apply)."""
    return _themes(out, side, "knights", "knights", "usr/share/knights/themes", KNIGHTS_PIECES, KNIGHTS_DUPLICATES, work)


def mahjongg(out: Path, side: int, subjects: int, work: Path) -> list[dict]:
    """KMahjongg's tile sets: the same 42 faces per set (`subjects` caps them)."""
    return _themes(out, side, "mahjongg", "kdegames-mahjongg-data-kf5", "usr/share/kmahjongglib/tilesets",
                   MAHJONGG_FACES[:subjects], set(), work)


# --- openclipart drawings by creator (Debian openclipart-svg) ------------------------------

CREATOR = re.compile(rb"<dc:creator>\s*<cc:Agent[^>]*>\s*<dc:title>([^<]*)</dc:title>", re.S)
# the same person under two spellings (accents and punctuation are folded before this)
CREATOR_ALIASES = {"rollandin-francesco": "architetto-francesco-rollandin", "a-j-ashton": "aj-ashton"}
# not one artist ("anonymous", a bare initial), or another spelling of a creator who has a folder under
# the name above: left out rather than merged, so that creator's sampled drawings (some held out) stay as they were
NOT_CREATORS = {"anonymous", "c", "jean-victor-balin-balin-j-epita-fr", "francesco-rollandin"}
MIN_DRAWINGS = 12  # fewer than this cannot fill a P x K batch slot with distinct drawings (--min-drawings)


def creator_slug(svg: bytes) -> str:
    """The drawing's creator as a folder name ('' when unnamed): accents and punctuation
    folded, so 'Sérgio Luiz Araújo Silva' and 'Sergio Luiz Araujo Silva' are one artist."""
    match = CREATOR.search(svg[:20_000])
    if not match:
        return ""
    ascii_name = unicodedata.normalize("NFKD", match.group(1).decode("utf-8", "replace")).encode("ascii", "ignore").decode()
    slug = "-".join(re.findall(r"[a-z0-9]+", ascii_name.lower()))
    return CREATOR_ALIASES.get(slug, slug)


def spread(items: list) -> list:
    """All items, ordered so that every prefix is spread evenly over the list (halving strides:
    0, n/2, n/4, 3n/4, ...), so taking the first N that render samples the whole list."""
    order: list[int] = []
    seen: set[int] = set()
    stride = len(items)
    while stride >= 1 and len(order) < len(items):
        for i in range(0, len(items), stride):
            if i not in seen:
                seen.add(i)
                order.append(i)
        stride //= 2
    return [items[i] for i in order]


def openclipart(out: Path, side: int, subjects: int, work: Path, min_drawings: int = MIN_DRAWINGS) -> list[dict]:
    """Every creator with at least `min_drawings` renderable drawings, up to `subjects` of them
    each, spread over their sorted files; a drawing resvg cannot render is replaced by another.
    Fewer than MIN_DRAWINGS suit fitting a fused map (an artist with 2 works teaches it), not P x K batches."""
    root, version, licence = debian(["openclipart-svg"], work)["openclipart-svg"]
    svgs = root / "usr" / "share" / "openclipart" / "svg"
    by_creator: dict[str, list[Path]] = {}
    for path in sorted(svgs.rglob("*.svg")):
        if slug := creator_slug(path.read_bytes()):
            by_creator.setdefault(slug, []).append(path)
    manifest = []
    for slug, paths in sorted(by_creator.items()):
        if len(paths) < min_drawings or slug in NOT_CREATORS:
            continue
        folder = out / "openclipart" / slug
        folder.mkdir(parents=True, exist_ok=True)
        written = 0
        for path in spread(paths):
            if written == subjects:
                break
            try:
                img = centred(svg_image(path.read_bytes(), side), side)
            except (OSError, ValueError):
                continue
            if img.convert("L").getextrema()[0] < 250:  # a drawing resvg renders blank (all white) is skipped
                # named by the whole relative path: two folders can hold drawings of one name
                img.save(folder / f"{path.relative_to(svgs).with_suffix('').as_posix().replace('/', '-')}.png")
                written += 1
        if written < min_drawings:  # too few renderable drawings to count as an artist
            shutil.rmtree(folder)
            continue
        manifest.append({"source": "openclipart", "style": slug, "package": "debian openclipart-svg", "version": version,
                         "licence": licence, "images": written})
    return manifest


# --- typefaces (Debian font packages) -------------------------------------------------------

# One package per design: metric clones of the same faces (TeX Gyre, Liberation, FreeFont
# next to the URW fonts they copy) are left out, as near-identical variants of one style.
FONT_PACKAGES = (
    "fonts-urw-base35", "fonts-dejavu-core", "fonts-comic-neue", "fonts-linuxlibertine", "fonts-ebgaramond",
    "fonts-cantarell", "fonts-humor-sans", "fonts-breip", "fonts-lobster", "fonts-sil-gentium", "fonts-sil-andika",
    "fonts-junicode", "fonts-fantasque-sans", "fonts-hack", "fonts-inconsolata", "fonts-open-sans", "fonts-lato",
    "fonts-cabin", "fonts-crosextra-caladea", "fonts-crosextra-carlito", "fonts-roboto-unhinted", "fonts-dancingscript",
    "fonts-oldstandard", "fonts-league-spartan",
)
FONT_TEXTS = ("Aa", "Style", "quick", "fox", "Rg&", "42", "Wave", "ink?", "Qj", "Mum", "xyz", "Bob")
REGULAR = {"regular", "book", "roman", "normal"}
NOT_TEXT = re.compile(r"symbol|dingbat|d050000l|math|keyboard", re.I)  # fonts without letters (or keycaps)
VARIANT = re.compile(r"alt$|display|narrow|condensed", re.I)  # one family's variants: one label, the regular one


def font_label(family: str, style: str) -> str | None:
    """The style label of a font file, or None for a face that is not a family's regular
    text face (bold, italic, variants, symbol fonts)."""
    if style.lower() not in REGULAR or NOT_TEXT.search(family) or VARIANT.search(family):
        return None
    return re.sub(r"[^a-z0-9]+", "-", family.lower()).strip("-")


def fonts(out: Path, side: int, subjects: int, work: Path) -> list[dict]:
    """Each family's regular face sets the same texts (black on white, cropped and centred
    like every other source); one style per family. `subjects` caps the texts (12)."""
    manifest = []
    for package, (root, version, licence) in debian(FONT_PACKAGES, work).items():
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".ttf", ".otf")):
            face = ImageFont.truetype(str(path), 96)
            slug = font_label(*face.getname())
            if slug is None or (out / "fonts" / slug).exists():  # not a regular face, or the family is done
                continue
            target = out / "fonts" / slug
            target.mkdir(parents=True)
            for text in FONT_TEXTS[:subjects]:
                canvas = Image.new("RGB", (96 * (len(text) + 2), 240), "white")
                ImageDraw.Draw(canvas).text((48, 40), text, font=face, fill="black")
                centred(canvas, side).save(target / f"{re.sub(r'[^A-Za-z0-9]', '_', text)}.png")
            manifest.append({"source": "fonts", "style": slug, "package": f"debian {package}", "version": version,
                             "licence": licence, "images": min(subjects, len(FONT_TEXTS))})
    return manifest


SOURCES = {"emoji": emoji, "iconsets": iconsets, "icons": icons, "chess": chess, "knights": knights, "mahjongg": mahjongg,
           "openclipart": openclipart, "fonts": fonts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--subjects", type=int, default=120, help="subjects per source (emoji: in every set; iconsets: concepts per set; icons: in at least half the themes; "
                        "openclipart: drawings per creator, at most)")
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--min-drawings", type=int, default=MIN_DRAWINGS,
                        help="openclipart: creators with fewer renderable drawings are left out")
    args = parser.parse_args()
    if args.min_drawings < 2:
        parser.error("--min-drawings: at least 2 (an artist needs two works to be found by the other)")
    sources = args.sources.split(",")
    if reserved := [source for source in sources if RESERVED.search(source)]:
        raise SystemExit(f"{reserved[0]} is reserved for independent evaluation")
    # a source added to an existing corpus keeps the other sources' manifest entries
    previous = args.out / "manifest.json"
    manifest = [m for m in json.loads(previous.read_text())["styles"] if m["source"] not in sources] if previous.exists() else []
    # each style records its renderer: a newer resvg-py renders SVGs an older one refused, and so gives more styles
    renderer = f"resvg-py {importlib.metadata.version('resvg-py')}, Pillow {importlib.metadata.version('pillow')}"
    for source in sources:
        shutil.rmtree(args.out / source, ignore_errors=True)  # a rebuilt source keeps no folder of an earlier build
        with tempfile.TemporaryDirectory() as tmp:
            options = {"min_drawings": args.min_drawings} if source == "openclipart" else {}
            manifest += [m | {"renderer": renderer} for m in SOURCES[source](args.out, args.side, args.subjects, Path(tmp), **options)]
    (args.out / "manifest.json").write_text(json.dumps({"styles": manifest, "images": sum(m["images"] for m in manifest)}, indent=2))
    with open(args.out / "labels.csv", "w", encoding="utf-8") as fh:  # `stylesearch train finetune OUT/labels.csv`
        fh.write("path,artist\n")
        for image in sorted(args.out.glob("*/*/*.png")):
            fh.write(f"{image.relative_to(args.out)},{image.parent.parent.name}/{image.parent.name}\n")
    print(f"{len(manifest)} styles, {sum(m['images'] for m in manifest)} images in {args.out}")


if __name__ == "__main__":
    main()
