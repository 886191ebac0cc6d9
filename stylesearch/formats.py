"""Which file names stylesearch reads (the one list shared by scanning, loading and archives),
and how a name is shown to people."""

from __future__ import annotations

import os
from pathlib import PurePath

IMAGE_EXTS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif"}
)
ZIP_EXTS = frozenset({".cbz", ".zip"})
RAR_EXTS = frozenset({".cbr", ".rar"})
PDF_EXTS = frozenset({".pdf"})
ARCHIVE_EXTS = ZIP_EXTS | RAR_EXTS | PDF_EXTS
SUPPORTED_EXTS = IMAGE_EXTS | ARCHIVE_EXTS


def suffix(path: str | bytes | os.PathLike) -> str:
    return PurePath(os.fsdecode(path)).suffix.lower()


def is_supported(path: str | bytes | os.PathLike) -> bool:
    return suffix(path) in SUPPORTED_EXTS


def is_archive(path: str | bytes | os.PathLike) -> bool:
    return suffix(path) in ARCHIVE_EXTS


def shown(path: str | bytes | os.PathLike) -> str:
    """A path as one printable line: newlines, other control characters and undecodable
    bytes escaped, so one failure is one line and a picture's caption or a web page can show
    any name (the --json outputs keep the real path)."""
    text = os.fsdecode(path)
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode() for c in text)
