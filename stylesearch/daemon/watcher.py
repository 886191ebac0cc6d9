"""Folder watching: watchdog events -> settled, coalesced batches of paths to index.

A path is handed on only once it has been quiet for `settle_s` and its size and mtime held
still between two looks, so a file still being copied or downloaded is embedded once, when
complete; temporary names (.part, .crdownload, ~ ...) are ignored until renamed. Bursts
become batches of up to `max_batch` paths, not one model call per file. Watching is per
folder (inotify watches directories), so a large library costs one watch per folder.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..errors import StyleSearchError
from ..formats import is_supported

log = logging.getLogger("stylesearch.daemon")
TEMP_SUFFIXES = (".part", ".crdownload", ".download", ".tmp", ".partial", ".swp", "~")
ROOT_CHECK_S = 2.0
INOTIFY_HINT = "raise it with: sudo sysctl fs.inotify.max_user_watches=524288 (and add it to /etc/sysctl.conf)"


def interesting(path: str, is_directory: bool, root: str = os.sep) -> bool:
    """Worth a look: nothing hidden below `root` (a root may itself sit in a hidden folder),
    not a temporary download, a supported file or a folder."""
    parts = os.path.relpath(path, root).split(os.sep)
    if any(p.startswith(".") and p not in (".", "..") for p in parts):
        return False
    name = parts[-1]
    if name.endswith(TEMP_SUFFIXES):
        return False
    return is_directory or is_supported(name)


class _Handler(FileSystemEventHandler):
    def __init__(self, note: Callable[[str, bool], None]) -> None:
        self.note = note

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write") or (event.is_directory and event.event_type == "modified"):
            return  # a folder's "modified" only echoes changes to its files, which come on their own
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path:
                self.note(os.fsdecode(path), event.is_directory)


class Watcher:
    def __init__(self, on_batch: Callable[[list[str]], None], *, settle_s: float = 1.0, max_batch: int = 512) -> None:
        self.on_batch = on_batch
        self.settle_s, self.max_batch = settle_s, max_batch
        self.pending: dict[str, tuple[float, tuple]] = {}  # path -> (last change, (size, mtime) then)
        self.lock = threading.Lock()
        self.observer = Observer()
        self.watches: dict[str, object] = {}
        self.missing_roots: set[str] = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._settle_loop, name="settle", daemon=True)

    @property
    def queue_length(self) -> int:
        return len(self.pending)

    def start(self) -> None:
        self.observer.start()
        self.thread.start()

    def watch(self, root: str) -> None:
        if root in self.watches:
            return
        if not os.path.isdir(root):  # offline now: followed by _check_roots until it returns
            self.watches[root] = None
            self.missing_roots.add(root)
            return
        try:
            self.watches[root] = self.observer.schedule(_Handler(self.note), root, recursive=True)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StyleSearchError(f"inotify watch limit reached while watching {root}: {INOTIFY_HINT}") from None
            raise

    def unwatch(self, root: str) -> None:
        watch = self.watches.pop(root, None)
        self.missing_roots.discard(root)
        if watch is not None:
            try:
                self.observer.unschedule(watch)
            except KeyError:  # its folder vanished: watchdog already dropped the watch
                pass

    def note(self, path: str, is_directory: bool = False, *, now: bool = False) -> None:
        """Something changed at `path`; `now` skips the settle wait (explicit enqueue)."""
        root = max((r for r in self.watches if path == r or path.startswith(r.rstrip(os.sep) + os.sep)), key=len, default=os.sep)
        if not interesting(path, is_directory, root):
            return
        with self.lock:
            self.pending[path] = (0.0 if now else time.monotonic(), _identity(path))

    def stop(self) -> None:
        self.stopping.set()
        self.observer.stop()
        self.observer.join(timeout=5)
        self.thread.join(timeout=30)

    def _settled(self) -> list[str]:
        """Paths quiet for settle_s whose size/mtime did not move since the last look."""
        ready, now = [], time.monotonic()
        with self.lock:
            for path, (changed, then) in list(self.pending.items()):
                if now - changed < self.settle_s:
                    continue
                current = _identity(path)
                if current != then:
                    self.pending[path] = (now, current)  # still being written
                else:
                    ready.append(path)
                    del self.pending[path]
                if len(ready) >= self.max_batch:
                    break
        return coalesce(ready)

    def _check_roots(self) -> None:
        """inotify says nothing useful when a watched root itself is unmounted or moved away,
        nor when it comes back: look, and re-watch a root that returned."""
        for root in list(self.watches):
            present = os.path.isdir(root)
            if present == (root not in self.missing_roots):
                continue
            if present:
                self.missing_roots.discard(root)
                self.unwatch(root)
                self.watch(root)
            else:
                self.missing_roots.add(root)
            self.note(root, True, now=True)

    def _settle_loop(self) -> None:
        last_check = 0.0
        while not self.stopping.is_set():
            if time.monotonic() - last_check > ROOT_CHECK_S:
                self._check_roots()
                last_check = time.monotonic()
            batch = self._settled()
            if batch:
                try:
                    self.on_batch(batch)
                except Exception:  # noqa: BLE001 - the watcher must outlive a bad batch
                    log.exception("indexing a batch of %d paths failed", len(batch))
            else:
                self.stopping.wait(min(0.25, self.settle_s / 2))


def _identity(path: str) -> tuple:
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return ("gone",)


def coalesce(paths: list[str]) -> list[str]:
    """Drop paths inside another path of the batch (a folder covers its files)."""
    folders = sorted({p.rstrip(os.sep) + os.sep for p in paths if os.path.isdir(p)})
    return sorted(p for p in set(paths) if not any(p.startswith(f) and p + os.sep != f for f in folders))
