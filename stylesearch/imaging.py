"""Any supported file -> one RGB image. Used by indexing, queries and training alike.

Decoding is defensive: size limits are checked before pixels are decoded, Pillow's
decompression-bomb guard stays on, and every failure becomes an ImageLoadError with a
one-line reason that the catalog records while the batch goes on.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import archives
from .errors import ImageLoadError, one_line
from .formats import is_archive, suffix

MAX_FILE_BYTES = 256 * 1024 * 1024  # one image file; archives have their own member limits

try:  # AVIF is built into recent Pillow; HEIF needs the optional pillow-heif plugin.
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:
    pass

# Pillow warns (on stderr, once per run) about images between its pixel limit and twice it;
# decode_image refuses that whole range with a one-line reason, so the warning is noise
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def load_image(path: str | os.PathLike, target: int = 0) -> Image.Image:
    """Open an image or a comic archive's cover as RGB.

    `target` > 0 lets JPEG decoding skip detail finer than a target x target thumbnail
    needs (DCT-domain downscaling): a 1600x2400 cover decodes at 400x600 for a 224 model.
    """
    with open_regular(path) as fh:
        if is_archive(path):
            cover = archives.read_cover(os.fsdecode(path), fh, suffix(path), target)
            return cover if isinstance(cover, Image.Image) else decode_image(cover, target)
        return decode_image(read_limited(fh, MAX_FILE_BYTES), target)


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a non-empty regular file for reading; FIFOs and devices are refused without blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except PermissionError:
        raise ImageLoadError("permission denied") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot open: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        os.close(fd)
        raise ImageLoadError("not a regular file" if not stat.S_ISREG(info.st_mode) else "empty file (0 bytes)")
    return os.fdopen(fd, "rb")


def read_limited(fh: BinaryIO, limit: int) -> bytes:
    """Read at most `limit` bytes, refusing (not truncating) anything larger: by its size
    first, so a huge file costs no memory, then by reading on past it (files can grow).
    The first read asks for the size, not the limit: read(n) allocates n bytes up front,
    which cost ~0.5 ms per cover at a 256 MiB limit."""
    try:
        size = os.fstat(fh.fileno()).st_size
        too_big = size > limit
        data = b"" if too_big else fh.read(size + 1)
        if len(data) > size:  # grew since fstat
            data += fh.read(limit + 1 - len(data))
    except OSError as exc:
        raise ImageLoadError(f"read error: {exc.strerror or exc}") from None
    if too_big or len(data) > limit:
        raise ImageLoadError(f"file too large (> {limit >> 20} MiB limit)")
    return data


def decode_image(data: bytes, target: int = 0) -> Image.Image:
    """Decode image bytes to RGB: first frame, EXIF orientation, alpha on white, 8-bit."""
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageLoadError("image has no pixels")
        # Pillow's bomb guard (Image.MAX_IMAGE_PIXELS, ~89 MP) raises only above twice its
        # limit and warns below; refuse the whole range, from the header, before decoding.
        if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
            raise ImageLoadError(f"decompression bomb refused: {width}x{height} px is over the {Image.MAX_IMAGE_PIXELS} px limit")
        if target and img.format == "JPEG":
            img.draft("RGB", (target, target))
        img.load()
        img = _apply_orientation(img)
        return to_rgb(img)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise ImageLoadError("not a recognised image format") from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError, MemoryError) as exc:
        raise ImageLoadError(f"corrupt image: {one_line(exc)}") from None


def _apply_orientation(img: Image.Image) -> Image.Image:
    """EXIF orientation; a malformed EXIF block is ignored rather than failing the image."""
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # noqa: BLE001 - absurd EXIF must not make a good image unreadable
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited on white (like paper)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        top = float(arr.max(initial=0))
        scale = 257.0 if img.mode.startswith("I;16") or top > 255 else 1.0
        if img.mode == "F":
            top = top or 1.0
            scale = top / 255.0 if top > 255 or top <= 1.0 else 1.0
        grey = np.empty(arr.shape, dtype=np.uint8)
        for row in range(0, len(arr), 64):  # float64 in strips: exact, without 24 bytes/px of temporaries
            grey[row : row + 64] = np.clip(np.divide(arr[row : row + 64], scale, dtype=np.float64), 0, 255)
        img = Image.fromarray(grey, "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


def whiten_paper(pixels: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> the same with tinted paper made white, when the image's rim is paper.

    Why: the model learned style from drawings on white; a scan of cream or yellowed paper
    puts its tint on every statistic (the statistics take near-white for paper and count
    the rest as drawn), which cost a third of held-out mAP@R (models/MODEL_CARD.md). When at
    least 60% of the rim lies near one bright, nearly grey colour (each channel 200 to 249,
    spread at most 48), every pixel is divided by that colour, as a scanner's white balance
    does; white paper, full-bleed art and coloured or darker backgrounds are left as they are.
    """
    side = max(2, min(pixels.shape[:2]) // 32)
    rim = np.concatenate([pixels[:side].reshape(-1, 3), pixels[-side:].reshape(-1, 3),
                          pixels[:, :side].reshape(-1, 3), pixels[:, -side:].reshape(-1, 3)]).astype(np.float32)
    paper = np.median(rim, axis=0)
    if paper.min() < 200 or paper.max() >= 250 or np.ptp(paper) > 48:
        return pixels
    if (np.abs(rim - paper).max(axis=1) <= 20).mean() < 0.6:
        return pixels
    return np.clip(np.rint(pixels * (255.0 / paper)), 0, 255).astype(np.uint8)
