"""Finding the model file, without importing torch (cold CLI start-up stays cheap)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import StyleSearchError

DEFAULT_NAME = "stylesearch-default.pt"


def model_dirs() -> list[Path]:
    """Where the bundled model is looked for: the source tree, then the installed data dir."""
    return [Path(__file__).resolve().parents[2] / "models", Path(sys.prefix) / "share" / "stylesearch" / "models"]


def resolve_model_path(path: str | Path | None = None) -> Path:
    """The chosen model file (option, env or settings), else the bundled default."""
    if path:
        path = Path(path).expanduser()
        if not path.is_file():
            raise StyleSearchError(f"model path is a folder, not a .pt file: {path}" if path.is_dir() else f"model file not found: {path}")
        return path.resolve()
    for folder in model_dirs():
        candidate = folder / DEFAULT_NAME
        if candidate.is_file():
            return candidate.resolve()
    raise StyleSearchError(f"no model found: {DEFAULT_NAME} is missing from {model_dirs()[0]}; pass --model PATH")
