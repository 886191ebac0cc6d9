"""Starting, stopping and inspecting the background daemon (`stylesearch daemon ...`)."""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import platformdirs

from ..errors import StyleSearchError
from . import client

START_TIMEOUT_S = 120.0


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir("stylesearch"))


def log_file() -> Path:
    """daemon.log for the default socket; a daemon on another STYLESEARCH_SOCKET logs to
    daemon-<hash of that socket's path>.log, so two libraries' daemons never share (and
    rotate) one file, whatever their sockets are called."""
    socket = client.socket_path()
    if socket == client.default_socket_path():
        return log_dir() / "daemon.log"
    return log_dir() / f"daemon-{hashlib.blake2b(os.fsencode(socket.absolute()), digest_size=4).hexdigest()}.log"


def setup_logging(to_file: bool) -> None:
    """Rotating log file for the background daemon (5 x 2 MB), stderr in the foreground."""
    handler: logging.Handler
    if to_file:
        log_dir().mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_file(), maxBytes=2_000_000, backupCount=5)
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("stylesearch")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)


def running() -> dict | None:
    try:
        return client.request("status", timeout=5)
    except client.DaemonUnavailable:
        return None


def start(cli_args: list[str], roots: list[str]) -> dict:
    """Launch `stylesearch <cli_args> daemon run ROOTS` detached, and wait until it answers."""
    if info := running():
        raise StyleSearchError(f"the daemon is already running (pid {info['pid']}, library {info.get('library')}); "
                               "a daemon for another library needs its own STYLESEARCH_SOCKET")
    log_dir().mkdir(parents=True, exist_ok=True)
    crash_log = log_file().with_suffix(".out")
    with open(crash_log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stylesearch", *cli_args, "daemon", "run", "--log-file", *roots],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = crash_log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise StyleSearchError(f"the daemon exited at start: {tail[0]}")
        if info := running():
            return info
        time.sleep(0.2)
    raise StyleSearchError(f"the daemon did not answer within {START_TIMEOUT_S:.0f} s; see {log_file()}")


def stop(timeout: float = 60.0) -> int | None:
    """Ask the daemon to stop (it saves the index first); returns its pid, None if none ran."""
    info = running()
    if info is None:
        return None
    try:
        client.request("stop", timeout=5)
    except client.DaemonUnavailable:
        os.kill(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(info["pid"], 0)
        except ProcessLookupError:
            return info["pid"]
        time.sleep(0.1)
    raise StyleSearchError(f"the daemon (pid {info['pid']}) did not stop within {timeout:.0f} s")


def tail(lines: int) -> list[str]:
    path = log_file()
    if not path.is_file():
        return []
    return path.read_text(errors="replace").splitlines()[-lines:] if lines > 0 else []
