"""The daemon: one process that owns the library's write lock, keeps the model and the
index warm, follows the watched folders, and answers the socket protocol (`client.py`).

Threads: the socket server (one per connection), watchdog's observer, the settle loop that
indexes batches one at a time, and a saver that writes the HNSW file when it is dirty.
Catalog rows are committed as each file is embedded; the index file is saved every
`save_every_s` and at shutdown, and rebuilt from the catalog if a crash left it stale.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import socketserver
import stat
import struct
import threading
import time
from pathlib import Path

from ..errors import StyleSearchError, one_line
from ..library.folder import Library
from ..library.indexer import index_paths
from ..search.morph import answer as morph_answer
from ..search.morph import morph
from ..search.similar import similar
from . import client
from .watcher import Watcher

log = logging.getLogger("stylesearch.daemon")
MAX_REQUEST_BYTES = 1 << 20  # one request line: an operation, its options and paths


class Service:
    def __init__(self, library: Library, embedder, *, settle_s: float = 1.0, save_every_s: float = 30.0) -> None:
        self.library, self.embedder = library, embedder
        self.settle_s, self.save_every_s = settle_s, save_every_s
        self.started = time.time()
        self.index_lock = threading.Lock()  # one batch at a time
        self.dirty = False
        self.stats = {"indexed": 0, "images_per_s": 0.0, "last_error": None, "last_batch": None}
        self.watcher = Watcher(self._index_batch, settle_s=settle_s)
        self.server: socketserver.ThreadingUnixStreamServer | None = None
        self.stopping = threading.Event()

    # --- indexing ---------------------------------------------------------------------
    def _index_batch(self, paths: list[str], *, as_roots: bool = False, retry_failed: bool = False) -> None:
        """Index one batch (one at a time); any failure is logged and shown by `daemon status`,
        never fatal. Rows committed before a failure stay, and the index is marked for saving."""
        with self.index_lock:
            started = time.monotonic()
            try:
                summary = index_paths(self.library, paths, self.embedder, as_roots=as_roots, save=False,
                                      retry_failed=retry_failed)
            except Exception as exc:  # noqa: BLE001 - the daemon must outlive a bad batch
                self.stats["last_error"] = one_line(exc)
                self.dirty = True
                log.exception("indexing %d path(s) failed", len(paths))
                return
            seconds = time.monotonic() - started
            done = summary.added + summary.updated
            self.stats["indexed"] += done
            if done:
                self.stats["images_per_s"] = round(done / max(seconds, 1e-9), 1)
            if summary.errors:
                self.stats["last_error"] = f"{summary.errors[-1][0]}: {summary.errors[-1][1]}"
            self.stats["last_batch"] = {k: v for k, v in summary.to_dict().items() if k not in ("errors", "missing")}
            self.dirty = True
            log.info("indexed %d path(s) in %.2f s: %s", len(paths), seconds, self.stats["last_batch"])

    def save(self) -> None:
        with self.index_lock:
            if self.dirty:
                self.library.save_ann(self.library.ann())
                self.dirty = False
                log.info("index saved")

    def _saver(self) -> None:
        while not self.stopping.wait(self.save_every_s):
            self.save()

    def roots(self) -> list[str]:
        return [os.fsdecode(r) for r in self.library.catalog.roots()]

    def _follow_roots(self) -> None:
        """Watch exactly the library's roots (they change with `roots add/remove`)."""
        roots = set(self.roots())
        for root in roots - set(self.watcher.watches):
            self.watcher.watch(root)
        for root in set(self.watcher.watches) - roots:
            self.watcher.unwatch(root)

    # --- requests ---------------------------------------------------------------------
    def handle(self, message: dict):
        if not isinstance(message, dict) or not isinstance(message.get("args", {}), dict):
            raise StyleSearchError("a request is one JSON object per line, with an object as its args")
        if message.get("v") != client.PROTOCOL_VERSION:
            raise StyleSearchError(f"protocol version {message.get('v')} not supported (this daemon speaks {client.PROTOCOL_VERSION})")
        library = message.get("library")
        if library and Path(library).expanduser().resolve() != self.library.folder.resolve():
            raise _Unavailable(f"this daemon serves {self.library.folder}, not {library}")
        op, args = message.get("op"), message.get("args") or {}
        model = args.get("model")
        if model and Path(model).expanduser().resolve() != Path(self.embedder.info.path).resolve():
            raise _Unavailable("this daemon runs another model")
        embed = lambda _path: self.embedder  # noqa: E731 - the warm model answers every query
        if op == "status":
            return self.status()
        if op == "similar":
            hits = similar(self.library, _path(args.get("query")), k=int(args.get("k", 10)), include_self=bool(args.get("include_self")),
                           distinct=bool(args.get("distinct")), model=self.embedder.info.path, make_embedder=embed)
            return [h.to_dict() for h in hits]
        if op == "morph":
            return morph_answer(*morph(self.library, _path(args.get("a")), _path(args.get("b")), k=int(args.get("k", 5)), steps=args.get("steps"),
                                       model=self.embedder.info.path, make_embedder=embed))
        if op == "enqueue":  # `stylesearch index PATH...` while the daemon runs: no settle wait
            paths = _paths(args.get("paths", []))

            def run() -> None:
                self._index_batch(paths, as_roots=bool(args.get("as_roots")), retry_failed=bool(args.get("retry_failed")))
                self._follow_roots()

            threading.Thread(target=run, name="enqueue", daemon=True).start()
            return {"queued": len(paths)}
        if op == "rescan":
            for root in self.roots():
                self.watcher.note(root, True, now=True)
            self._follow_roots()
            return {"queued": len(self.roots())}
        if op == "forget":
            with self.index_lock:
                forgotten = self.library.forget(_paths(args.get("paths", [])))
                self.dirty = True
            self._follow_roots()
            return {"forgotten": forgotten}
        if op == "stop":
            threading.Thread(target=self.shutdown, daemon=True).start()
            return {}
        raise StyleSearchError(f"unknown operation {op!r}")

    def status(self) -> dict:
        return {"pid": os.getpid(), "uptime_s": round(time.time() - self.started, 1), "library": str(self.library.folder),
                "model_id": self.embedder.info.model_id, "model": str(self.embedder.info.path), "roots": self.roots(),
                "queue": self.watcher.queue_length, **self.stats, "counts": self.library.catalog.counts()}

    # --- life cycle -------------------------------------------------------------------
    def serve(self, extra_roots: list[str] = ()) -> None:
        """Run until stopped (SIGTERM, SIGINT, or the `stop` request)."""
        with self.library.writer():
            with self.library.catalog.transaction():
                for root in extra_roots:
                    self.library.catalog.add_root(os.fsencode(os.path.abspath(root)))
            self.server = _bind(self)
            pidfile = client.socket_path().with_name(client.socket_path().name + ".pid")  # one per socket
            pidfile.write_text(str(os.getpid()))
            if threading.current_thread() is threading.main_thread():  # (tests run it in a thread)
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, lambda *_: threading.Thread(target=self.shutdown, daemon=True).start())
            self.watcher.start()
            threading.Thread(target=self._saver, name="saver", daemon=True).start()
            threading.Thread(target=self._reconcile, name="reconcile", daemon=True).start()
            log.info("serving %s on %s (pid %d)", self.library.folder, client.socket_path(), os.getpid())
            try:
                self.server.serve_forever(poll_interval=0.2)
            finally:
                self.watcher.stop()
                self.save()
                self.server.server_close()
                client.socket_path().unlink(missing_ok=True)
                pidfile.unlink(missing_ok=True)
                log.info("stopped")

    def _reconcile(self) -> None:
        self._index_batch(self.roots(), as_roots=True)
        try:
            self._follow_roots()
        except StyleSearchError as exc:  # e.g. the inotify limit
            self.stats["last_error"] = str(exc)
            log.error("%s", exc)

    def shutdown(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            if self.server is not None:
                self.server.shutdown()


class _Unavailable(Exception):
    """The request is for another library or model: the caller should work in-process."""


def _path(value: object) -> str:
    """A path from a request: an absolute string (the daemon's working folder is not the
    caller's) without NUL bytes. The caller is the daemon's own user (see _Handler), so the
    daemon reads nothing that its caller could not read itself."""
    if not isinstance(value, str) or not os.path.isabs(value):
        raise StyleSearchError(f"expected an absolute path, not {value!r:.100}")
    if "\0" in value:
        raise StyleSearchError("a path must not contain NUL bytes")
    return value


def _paths(value: object) -> list[str]:
    if not isinstance(value, list):
        raise StyleSearchError("paths must be a list of absolute paths")
    return [_path(v) for v in value]


def _peer_uid(conn: socket.socket) -> int | None:
    """The connecting process's uid (SO_PEERCRED, Linux); None where the OS cannot say,
    and the socket's file mode alone keeps other users out."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    return struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        uid = _peer_uid(self.request)
        if uid is not None and uid != os.getuid():  # even if the socket's mode was loosened
            log.warning("refused a connection from uid %d", uid)
            return self._reply({"ok": False, "error": "permission denied: this daemon answers only its own user"})
        while line := self.rfile.readline(MAX_REQUEST_BYTES + 1):
            if len(line) > MAX_REQUEST_BYTES:
                return self._reply({"ok": False, "error": f"request too long (over {MAX_REQUEST_BYTES} bytes)"})
            try:
                reply = {"ok": True, "result": self.server.service.handle(json.loads(line))}
            except _Unavailable as exc:
                reply = {"ok": False, "unavailable": True, "error": str(exc)}
            except (StyleSearchError, KeyError, ValueError, TypeError) as exc:
                reply = {"ok": False, "error": one_line(exc)}
            except Exception as exc:  # noqa: BLE001 - a query must never take the daemon down
                log.exception("request failed")
                reply = {"ok": False, "error": f"internal error: {one_line(exc)}"}
            self._reply(reply)

    def _reply(self, reply: dict) -> None:
        self.wfile.write(json.dumps(reply).encode() + b"\n")
        self.wfile.flush()


def _bind(service: Service) -> socketserver.ThreadingUnixStreamServer:
    """Listen on the socket (mode 0600 in a 0700 folder of ours); refuse if a daemon already
    answers, or if the folder is shared (others could replace the socket or read the pidfile)."""
    path = client.socket_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = os.lstat(path.parent)
    if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != os.getuid() or stat.S_IMODE(folder.st_mode) & 0o077:
        raise StyleSearchError(f"the socket folder {path.parent} is not private: it must be your own folder with mode 0700 "
                               "(choose another with STYLESEARCH_SOCKET)")
    if path.exists():
        try:
            info = client.request("status", timeout=2)
            raise StyleSearchError(f"a stylesearch daemon is already running (pid {info.get('pid')}) on {path}")
        except client.DaemonUnavailable:
            path.unlink()  # stale socket from a crash
    old = os.umask(0o177)
    try:
        server = socketserver.ThreadingUnixStreamServer(str(path), _Handler)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    server.daemon_threads = True
    server.service = service
    return server
