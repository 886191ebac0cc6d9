"""Generated test inputs: images in every format, comic archives, and hostile files.

Nothing here is committed binary data; every file is made by the test that needs it.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def drawing(seed: int = 0, size: tuple[int, int] = (96, 128), style: int = 0) -> Image.Image:
    """A small 'illustration': strokes whose width and colour depend on `style`."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(180, 256, 3)))
    draw = ImageDraw.Draw(img)
    colour = [(0, 0, 0), (200, 30, 30), (30, 30, 200)][style % 3]
    for _ in range(12):
        xy = [int(v) for v in rng.integers(0, max(size), 4)]
        draw.line(xy, fill=colour, width=1 + 4 * (style % 3))
    return img


def save(img: Image.Image, path: Path, fmt: str | None = None, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **options)
    return path


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def cbz(path: Path, members: dict[str, bytes], encrypted: bool = False) -> Path:
    """A CBZ with the given members (name -> bytes), deflated. `encrypted` sets the
    encryption flag in every header (zipfile cannot write real encryption)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    if encrypted:
        raw = bytearray(path.read_bytes())
        for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = raw.find(signature)
            while at >= 0:
                raw[at + offset] |= 0x1
                at = raw.find(signature, at + 4)
        path.write_bytes(bytes(raw))
    return path


def _rar_block(head_type: int, flags: int, body: bytes) -> bytes:
    header = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header


def rar4(path: Path, members: dict[str, bytes], method: int = 0x30) -> Path:
    """A RAR 4 archive. Method 0x30 stores members (readable without any unrar tool);
    other methods claim compression, which needs an external backend to read."""
    out = bytearray(b"Rar!\x1a\x07\x00")
    out += _rar_block(0x73, 0, b"\0" * 6)
    for name, data in members.items():
        raw = name.encode()
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 0, zlib.crc32(data), 0x5A000000, 20, method, len(raw), 0x20) + raw
        out += _rar_block(0x74, 0x8000, body) + data
    out += _rar_block(0x7B, 0x4000, b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries no pixels (a decompression bomb probe)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def with_exif_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(img, "JPEG", exif=exif.tobytes(), quality=95)
