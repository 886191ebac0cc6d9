"""Building the calibre plugin zip from `plugins/calibre/` and installing it into calibre.

The zip carries a copy of `stylesearch/daemon/client.py` as `protocol.py`: calibre's Python
cannot import stylesearch, and the protocol stays defined in one place.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

from ..daemon import client
from ..errors import StyleSearchError
from . import plugin_dir

ACTION_NAME = "StyleSearch"  # the plugin's InterfaceAction name, as calibre's layouts list it
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # same sources, same zip bytes
# Shows the action on calibre's main toolbar and the book list's context menu; calibre only
# asks where to put a plugin when it is installed from its own Preferences.
_PLACE_ACTION = f"""
from calibre.gui2 import gprefs
for key in ('action-layout-toolbar', 'action-layout-context-menu'):
    names = list(gprefs[key])
    if {ACTION_NAME!r} not in names:
        gprefs[key] = tuple(names + [{ACTION_NAME!r}])
"""


def plugin_files() -> dict[str, bytes]:
    """The zip's members, name -> bytes: the plugin's sources and the protocol module."""
    folder = plugin_dir("calibre", "__init__.py")
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".py", ".txt")}
    files["protocol.py"] = Path(client.__file__).read_bytes()
    return files


def build_zip(out: Path) -> Path:
    """Write the plugin zip to `out` (byte-identical for identical sources)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in plugin_files().items():
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return out


def install(zip_path: Path) -> None:
    """Install the plugin zip with `calibre-customize -a`, then put its button on calibre's
    toolbar and the book list's context menu."""
    customize, debug = shutil.which("calibre-customize"), shutil.which("calibre-debug")
    if not (customize and debug):
        raise StyleSearchError("calibre is not installed: calibre-customize and calibre-debug were not found on PATH "
                               "(install calibre from https://calibre-ebook.com/download or your package manager)")
    _run([customize, "-a", str(zip_path)], "calibre-customize could not install the plugin")
    _run([debug, "-c", _PLACE_ACTION], "calibre-debug could not add the plugin to the toolbar")


def _run(command: list[str], failure: str) -> None:
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode:
        last = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[-1]
        raise StyleSearchError(f"{failure}: {last}")
