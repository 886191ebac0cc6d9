"""Where things live: the library folder, the settings file, and STYLESEARCH_* overrides.

Precedence for every setting: command-line option > environment variable > settings file >
built-in default, so scripts and several libraries side by side both stay simple.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import StyleSearchError

APP = "stylesearch"
KEYS = ("library", "model", "device")


def settings_path() -> Path:
    """The optional TOML settings file (keys: library, model, device)."""
    override = os.environ.get("STYLESEARCH_CONFIG")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP)) / "config.toml"


def _file_settings() -> dict:
    """The settings file's keys; a file named by STYLESEARCH_CONFIG must exist, and a key this
    program does not know is an error (a misspelt `library` would otherwise go unnoticed)."""
    path = settings_path()
    if os.environ.get("STYLESEARCH_CONFIG"):  # named: must exist (os.devnull means no settings)
        if not path.exists():
            raise StyleSearchError(f"settings file {path} (STYLESEARCH_CONFIG) not found")
    elif not path.is_file():
        return {}
    try:
        file = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StyleSearchError(f"cannot read settings file {path}: {exc}") from exc
    if unknown := sorted(set(file) - set(KEYS)):
        raise StyleSearchError(f"settings file {path}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    for key in KEYS:
        if key in file and not isinstance(file[key], str):
            raise StyleSearchError(f"settings file {path}: {key} must be a string")
    return file


@dataclass(frozen=True)
class Settings:
    library: Path
    model: Path | None
    device: str


def resolve(library: str | None = None, model: str | None = None, device: str | None = None) -> Settings:
    """Merge options, environment and settings file into one Settings."""
    file = _file_settings()

    def pick(option: str | None, env: str, key: str) -> str | None:
        return option or os.environ.get(env) or file.get(key)

    lib = pick(library, "STYLESEARCH_LIBRARY", "library")
    mdl = pick(model, "STYLESEARCH_MODEL", "model")
    return Settings(
        library=Path(lib).expanduser() if lib else Path(platformdirs.user_data_dir(APP)) / "library",
        model=Path(mdl).expanduser() if mdl else None,
        device=pick(device, "STYLESEARCH_DEVICE", "device") or "auto",
    )
