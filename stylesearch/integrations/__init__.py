"""Adapters between stylesearch and other applications (building and installing plugins)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import StyleSearchError


def plugin_dirs(name: str) -> list[Path]:
    """Where plugins/<name> can be: the source tree, then the copy that pyproject's
    data-files install under sys.prefix (a normal, non-editable install)."""
    return [Path(__file__).resolve().parents[2] / "plugins" / name,
            Path(sys.prefix) / "share" / "stylesearch" / "plugins" / name]


def plugin_dir(name: str, marker: str) -> Path:
    """The first of `plugin_dirs(name)` that holds `marker`; a one-line error if none does."""
    places = plugin_dirs(name)
    for folder in places:
        if (folder / marker).is_file():
            return folder
    raise StyleSearchError(f"the {name} plugin's files are missing (looked in {', '.join(map(str, places))})")
