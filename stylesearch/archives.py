"""Covers of comic archives (CBZ/ZIP, CBR/RAR, optional PDF), read in memory, never extracted.

The cover is the first image member in natural sort order ("page2" before "page10").
Archives are hostile input like any other: member count, member size and compression ratio
are bounded before anything is decompressed.
"""

from __future__ import annotations

import math
import re
import struct
import zipfile
import zlib
from typing import BinaryIO

from PIL import Image

from .errors import ImageLoadError, one_line
from .formats import IMAGE_EXTS, PDF_EXTS, RAR_EXTS, suffix

MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_RATIO = 100  # images are already compressed; a 100:1 member is a bomb, not a page
PDF_RENDER_SIDE = 448  # render PDF covers at least this big on their shorter side
PDF_MAX_PIXELS = 4096 * 4096  # ...but never bigger than this: a page's size is a few bytes anyone can write
ENCRYPTED = "archive is encrypted"
NO_RAR_BACKEND = "CBR needs an unrar backend: install unrar, unar or bsdtar (libarchive-tools)"
# What zipfile and rarfile raise on damaged input, beyond their own error types (found by
# fuzzing: an empty member name gives IndexError, a bad deflate stream zlib.error).
DAMAGED = (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, IndexError, KeyError, struct.error, zlib.error)


def natural_key(name: str) -> list:
    """Sort key that orders digit runs by value: page2 < page10."""
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", name)]


def is_page(name: str) -> bool:
    """An image member that is not OS clutter (__MACOSX, dot files, thumbnails folders)."""
    parts = name.replace("\\", "/").split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return suffix(name) in IMAGE_EXTS


def read_cover(path: str, fh: BinaryIO, ext: str, target: int = 0) -> bytes | Image.Image:
    """The cover's encoded bytes (ZIP, RAR) or rendered image (PDF)."""
    if ext in PDF_EXTS:
        return _pdf_cover(path, target)
    if zipfile.is_zipfile(fh):  # many .cbr files are really zips, and the other way round
        return _zip_cover(fh)
    fh.seek(0)
    if ext in RAR_EXTS or fh.read(7) == b"Rar!\x1a\x07\x00":
        return _rar_cover(path)
    raise ImageLoadError("not a valid CBZ/ZIP archive")


def _pick(names: list[str], count: int) -> str:
    if count > MAX_MEMBERS:
        raise ImageLoadError(f"archive has too many members ({count} > {MAX_MEMBERS})")
    pages = sorted((n for n in names if is_page(n)), key=natural_key)
    if not pages:
        raise ImageLoadError("archive contains no images")
    return pages[0]


def _check_member(size: int, packed: int, refusal: str | None) -> None:
    if refusal:
        raise ImageLoadError(refusal)
    if size > MAX_MEMBER_BYTES:
        raise ImageLoadError(f"cover member too large ({size >> 20} MiB > {MAX_MEMBER_BYTES >> 20} MiB)")
    if size > 1024 * 1024 and size > MAX_RATIO * max(packed, 1):
        raise ImageLoadError(f"cover member compression ratio over {MAX_RATIO}:1 (zip bomb?)")


def _read_bounded(stream: BinaryIO) -> bytes:
    data = stream.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:  # headers can lie about sizes
        raise ImageLoadError("cover member larger than its header says")
    return data


def _first_page(archive, refuse) -> bytes:
    """The cover's bytes from a zipfile.ZipFile or rarfile.RarFile (they share this API);
    `refuse(info)` is why the cover cannot be read (encrypted...), or None."""
    infos = archive.infolist()
    by_name = {i.filename: i for i in infos if not i.is_dir()}
    info = by_name[_pick(list(by_name), len(infos))]
    _check_member(info.file_size, info.compress_size, refuse(info))
    with archive.open(info) as member:
        return _read_bounded(member)


def _zip_cover(fh: BinaryIO) -> bytes:
    try:
        with zipfile.ZipFile(fh) as zf:
            return _first_page(zf, lambda info: ENCRYPTED if info.flag_bits & 0x1 else None)
    except ImageLoadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, *DAMAGED) as exc:
        raise ImageLoadError(f"corrupt archive: {one_line(exc)}") from None


def _rar_cover(path: str) -> bytes:
    import rarfile

    def refuse(info) -> str | None:
        # Asked before opening: without a backend, rarfile leaves a temporary copy of a
        # compressed member behind in the temp folder.
        if info.needs_password():
            return ENCRYPTED
        return None if info.compress_type == rarfile.RAR_M0 or _rar_backend() else NO_RAR_BACKEND

    try:
        with rarfile.RarFile(path) as rf:
            return _first_page(rf, refuse)
    except ImageLoadError:
        raise
    except rarfile.RarCannotExec:
        raise ImageLoadError(NO_RAR_BACKEND) from None
    except (rarfile.Error, *DAMAGED) as exc:
        raise ImageLoadError(f"corrupt archive: {one_line(exc)}") from None


def _rar_backend() -> bool:
    import rarfile

    try:
        rarfile.tool_setup()
        return True
    except rarfile.RarCannotExec:
        return False


def _pdf_cover(path: str, target: int) -> Image.Image:
    """First page rendered by PDFium, which reads the file lazily (never all of it)."""
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise ImageLoadError("PDF covers need the optional extra: pip install 'stylesearch[pdf]'") from None
    try:
        doc = pdfium.PdfDocument(path)
        try:
            if len(doc) == 0:
                raise ImageLoadError("PDF has no pages")
            page = doc[0]
            width, height = page.get_size()
            scale = max(target, PDF_RENDER_SIDE) / max(min(width, height), 1.0)
            scale = min(scale, 8.0, math.sqrt(PDF_MAX_PIXELS / max(width * height, 1.0)))
            while math.ceil(width * scale) * math.ceil(height * scale) > PDF_MAX_PIXELS:  # PDFium rounds up
                scale *= 0.99
            return page.render(scale=scale).to_pil().convert("RGB")
        finally:
            doc.close()
    except ImageLoadError:
        raise
    except (pdfium.PdfiumError, OSError, ValueError) as exc:
        raise ImageLoadError(f"corrupt PDF: {one_line(exc)}") from None
