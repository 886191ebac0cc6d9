"""Compare what is on disk under the given paths with what the catalog holds.

Nothing is read but directory entries and stat results, so an unchanged library of 100k
files is re-checked in seconds: (size, mtime) unchanged and same model = nothing to do.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..errors import StyleSearchError
from ..formats import is_supported
from .catalog import Catalog, FileRow


@dataclass
class Job:
    """A file that needs work: embedding, or at least hashing to find a reusable vector."""

    path: bytes
    size: int
    mtime_ns: int
    row: FileRow | None  # its current catalog row, if any
    hash: str | None = None


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    unchanged: int = 0
    vanished: list[FileRow] = field(default_factory=list)  # gone from a reachable folder
    offline: list[FileRow] = field(default_factory=list)  # under a folder that is not reachable
    back_online: list[FileRow] = field(default_factory=list)  # offline rows seen again, unchanged
    unreadable: list[tuple[bytes, str]] = field(default_factory=list)  # stat failed, not a file...
    unlisted: list[tuple[bytes, str]] = field(default_factory=list)  # folders that could not be listed
    missing: list[bytes] = field(default_factory=list)  # paths given that do not exist
    roots: list[bytes] = field(default_factory=list)  # folders scanned
    devices: dict[bytes, int] = field(default_factory=dict)  # roots seen reachable: their file system now


def normalise(path: str | bytes | os.PathLike) -> bytes:
    """Absolute, normalised OS bytes (symlinks kept: a user's path is what they will see)."""
    return os.path.normpath(os.path.abspath(os.fsencode(path)))


def walk(root: bytes, unlisted: list[tuple[bytes, str]]) -> Iterator[tuple[bytes, os.stat_result | str]]:
    """Supported files below `root` with their stat, or a one-line reason they cannot be
    read. Hidden entries are skipped and folder symlinks never followed (no loops); folders
    that cannot be listed go to `unlisted`, so their files are kept, not removed."""

    def on_error(exc: OSError) -> None:
        unlisted.append((os.fsencode(exc.filename or root), f"cannot list folder: {exc.strerror}"))

    for folder, dirs, files in os.walk(root, onerror=on_error, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(b"."))
        for name in sorted(files):
            if name.startswith(b".") or not is_supported(name):
                continue
            path = os.path.join(folder, name)
            try:
                info = os.stat(path)
            except OSError as exc:
                yield path, f"cannot stat: {exc.strerror}"
                continue
            yield path, info if stat.S_ISREG(info.st_mode) else "not a regular file"


def is_under(path: bytes, folder: bytes) -> bool:
    """`path` is `folder` itself or lies somewhere below it."""
    return path == folder or path.startswith(folder.rstrip(b"/") + b"/")


def owning_root(path: bytes, roots: Iterable[bytes]) -> bytes | None:
    """The deepest root that is `path` or holds it."""
    holders = [r for r in roots if is_under(path, r)]
    return max(holders, key=len) if holders else None


def reachable(root: bytes, device: int | None = None) -> bool:
    """A root folder that exists and is not an unmounted drive's empty mount point: it holds
    something, or it is empty on the file system it was on when it last held files
    (`device`, its st_dev then: emptied on purpose). Empty with nothing recorded: unmounted."""
    return root_device(root, device) is not None


def watched_roots(catalog: Catalog) -> list[tuple[bytes, bool]]:
    """Each root the library watches and whether it is reachable now (for status listings)."""
    recorded = catalog.root_devices()
    return [(root, reachable(root, recorded.get(root))) for root in catalog.roots()]


def root_device(root: bytes, device: int | None = None) -> int | None:
    """The st_dev of a reachable root (see `reachable`), None for one that is not."""
    try:
        info = os.stat(root)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    return info.st_dev if _has_entries(root) or info.st_dev == device else None


def plan(
    catalog: Catalog, targets: list[bytes], model_id: str, *, roots: Iterable[bytes] = (), retry_failed: bool = False
) -> Plan:
    """What to do for each file under `targets` (files or folders). `roots` are the folders
    the library watches. A file no longer on disk was deleted if its (deepest) root is
    reachable; if that root is gone or an empty mount point (an unmounted drive), or the
    folder holding it could not be listed, the file is offline, never deleted."""
    result = Plan()
    roots = set(roots)
    recorded = catalog.root_devices()
    result.devices = {r: d for r in roots if (d := root_device(r, recorded.get(r))) is not None}
    away = roots - set(result.devices)
    targets = [t for t in dict.fromkeys(targets) if not any(t != o and is_under(t, o) for o in targets)]  # outer walks cover inner

    def kept_offline(path: bytes) -> bool:
        return owning_root(path, roots) in away or any(is_under(path, folder) for folder, _ in result.unlisted)

    for target in targets:
        rows = {r.path: r for r in catalog.rows_at(target)}
        if os.path.isdir(target):
            seen = dict(walk(target, result.unlisted))
            result.roots.append(target)
        elif os.path.lexists(target):
            try:
                seen = {target: os.stat(target)}
            except OSError as exc:
                seen = {target: f"cannot stat: {exc.strerror}"}
        elif not rows:
            result.missing.append(target)
            continue
        else:
            seen = {}
        for path, info in seen.items():
            row = rows.pop(path, None)
            if isinstance(info, str):  # recorded once: listed again only when the reason changes
                if row is None or row.status != "failed" or row.error != info or retry_failed:
                    result.unreadable.append((path, info))
                else:
                    result.unchanged += 1
                continue
            same_file = row is not None and row.size == info.st_size and row.mtime_ns == info.st_mtime_ns
            if same_file and row.status == "offline" and row.model_id == model_id:
                result.back_online.append(row)
            elif same_file and ((row.status == "ok" and row.model_id == model_id) or (row.status == "failed" and not retry_failed)):
                result.unchanged += 1
            else:
                result.jobs.append(Job(path, info.st_size, info.st_mtime_ns, row))
        for row in rows.values():  # in the catalog, not seen now
            if not kept_offline(row.path) and (owning_root(row.path, roots) is not None or os.path.isdir(target)):
                result.vanished.append(row)
            elif row.status == "ok":
                result.offline.append(row)
    return result


def expand(paths: Iterable[str | os.PathLike]) -> tuple[list[bytes], list[tuple[bytes, str]]]:
    """Files given and supported files below folders given, plus folders that could not be
    listed; a path that does not exist is an error."""
    files: list[bytes] = []
    unlisted: list[tuple[bytes, str]] = []
    for given in paths:
        target = normalise(given)
        if os.path.isdir(target):
            files += [path for path, _ in walk(target, unlisted)]
        elif os.path.lexists(target):
            files.append(target)
        else:
            raise StyleSearchError(f"path not found: {os.fsdecode(target)}")
    return files, unlisted


def _has_entries(folder: bytes) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError:
        return False
