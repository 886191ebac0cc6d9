"""The one definition of the daemon protocol, and a client that needs only the standard
library (the calibre plugin ships a copy of this file).

Transport: a Unix domain socket, mode 0600, in the user's runtime dir
(`$XDG_RUNTIME_DIR/stylesearch/daemon.sock`, or `STYLESEARCH_SOCKET`). One JSON object per
line each way:

    request  {"v": 1, "op": "similar", "args": {...}}
    response {"ok": true, "result": ...}  or  {"ok": false, "error": "one line"}

Operations (args -> result):
    status   {}                                   -> {pid, uptime_s, library, model_id, roots, queue, images_per_s, last_error, indexed}
    similar  {query, k, include_self, distinct}   -> [{rank, distance, path}, ...]
    morph    {a, b, k, steps}                     -> {"steps": [{step, path, distance_to_a, distance_to_b}], "graph": {...}}
    enqueue  {paths, as_roots, retry_failed}      -> {queued: n}     index these files/folders now, in the
                                                                     background (folders become roots with as_roots)
    rescan   {}                                   -> {queued: n}     reconcile every root now, follow root changes
    forget   {paths: [...]}                       -> {forgotten: n}  drop files/folders from the library
    stop     {}                                   -> {}              shut down cleanly
Every request may carry "library" (a folder path): a daemon serving another library refuses
it, and the caller falls back to working in-process.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

PROTOCOL_VERSION = 1
TIMEOUT_S = 60.0


class DaemonUnavailable(Exception):
    """No daemon is listening (or it serves another library): work in-process instead."""


class DaemonError(Exception):
    """The daemon answered with an error for this request (a one-line reason)."""


def runtime_dir() -> Path:
    """Where the socket and pidfile live: $XDG_RUNTIME_DIR/stylesearch (as platformdirs'
    user_runtime_dir on Linux), else a per-user folder in /tmp."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "stylesearch" if base else Path(f"/tmp/stylesearch-{os.getuid()}")


def default_socket_path() -> Path:
    return runtime_dir() / "daemon.sock"


def socket_path() -> Path:
    override = os.environ.get("STYLESEARCH_SOCKET")
    return Path(override) if override else default_socket_path()


def request(op: str, args: dict | None = None, *, library: str | None = None, timeout: float = TIMEOUT_S):
    """Send one request and return its result; DaemonUnavailable if nobody answers."""
    path = socket_path()
    message = {"v": PROTOCOL_VERSION, "op": op, "args": args or {}}
    if library:
        message["library"] = str(library)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(str(path))
        except OSError as exc:  # no socket, or nobody listening on it
            raise DaemonUnavailable(f"no stylesearch daemon at {path} ({exc.__class__.__name__})") from None
        try:  # connected: from here on, trouble is the daemon's answer, not its absence
            conn.sendall(json.dumps(message).encode() + b"\n")
            with conn.makefile("rb") as stream:
                line = stream.readline()
        except TimeoutError:
            raise DaemonError(f"the daemon did not answer within {timeout:.0f} s (busy indexing?); "
                              "see `stylesearch daemon status`") from None
        except OSError as exc:
            raise DaemonError(f"lost the connection to the daemon ({exc.__class__.__name__})") from None
    if not line:
        raise DaemonUnavailable("the daemon closed the connection")
    reply = json.loads(line)
    if reply.get("ok"):
        return reply.get("result")
    if reply.get("unavailable"):
        raise DaemonUnavailable(reply.get("error", "daemon unavailable"))
    raise DaemonError(reply.get("error", "unknown daemon error"))
