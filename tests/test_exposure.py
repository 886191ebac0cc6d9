"""Nothing exposed: no network sockets in any mode, a private Unix socket that answers only
its own user, and request paths that are checked before the daemon touches them.

The rule for paths: the daemon serves one user (its own uid, checked with SO_PEERCRED on top
of the socket's 0600 mode in a 0700 folder) and reads files with that user's rights, which
the caller already has; every path in a request must be an absolute string without NUL
bytes (the daemon's working folder is not the caller's); answers carry catalog paths and
distances, never file contents.
"""

import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from stylesearch.daemon import client
from stylesearch.daemon.service import Service
from stylesearch.errors import StyleSearchError
from stylesearch.library.folder import Library

from conftest import wait_for
from samples import drawing, save

# The installed CLI with an audit hook that logs every socket the process creates or uses,
# and every name lookup (Python's audit events cover all socket use from Python code).
AUDITED_CLI = """
import os, sys
log = open(os.environ["SOCKET_AUDIT"], "a", buffering=1)
def hook(event, args):
    if event == "socket.__new__":
        log.write(f"new {int(args[1])}\\n")
    elif event in ("socket.bind", "socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname"):
        log.write(f"{event} {args[1]!r}\\n")
sys.addaudithook(hook)
from stylesearch.cli import main
sys.argv[0] = "stylesearch"
main()
"""


@pytest.fixture
def socket_env(monkeypatch):
    """The socket below a folder in /tmp that other users may enter (tmp_path is root's own)."""
    base = Path(tempfile.mkdtemp(prefix="stylesearch-exposure-"))
    os.chmod(base, 0o711)
    monkeypatch.setenv("STYLESEARCH_SOCKET", str(base / "run" / "daemon.sock"))
    yield base / "run" / "daemon.sock"
    shutil.rmtree(base, ignore_errors=True)


def inet_inodes() -> set[str]:
    """Inodes of every TCP, UDP and raw socket on the machine (listening or not)."""
    found = set()
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        try:
            with open(f"/proc/net/{table}") as fh:
                found |= {line.split()[9] for line in list(fh)[1:]}
        except FileNotFoundError:
            pass
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc/net")
def test_no_network_sockets_in_any_mode(tmp_path, tiny_model, comics):
    audit = tmp_path / "audit.log"
    env = {**os.environ, "STYLESEARCH_LIBRARY": str(tmp_path / "lib"), "STYLESEARCH_MODEL": str(tiny_model),
           "STYLESEARCH_CONFIG": os.devnull, "STYLESEARCH_SOCKET": str(tmp_path / "run" / "daemon.sock"),
           "SOCKET_AUDIT": str(audit)}
    cli = [sys.executable, "-c", AUDITED_CLI]
    a, b = str(comics / "artist0" / "page0.png"), str(comics / "artist2" / "page3.png")
    for args in (["index", str(comics)], ["similar", a, "--json"], ["morph", a, b, "--json"], ["status"], ["embed", a, "-o", str(tmp_path / "v.npz")]):
        done = subprocess.run(cli + args, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (args, done.stderr)
    daemon = subprocess.Popen(cli + ["daemon", "run", "--settle", "0.2"], env=env, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (tmp_path / "run" / "daemon.sock").exists(), timeout=60)
        for args in (["similar", a, "--json"], ["morph", a, b, "--json"], ["index", str(comics)]):  # through the daemon
            done = subprocess.run(cli + args, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, (args, done.stderr)
        sockets = socket_inodes(daemon.pid)
        assert sockets and not sockets & inet_inodes()  # it has sockets, none of them TCP/UDP/raw
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    events = audit.read_text().splitlines()
    created = {line for line in events if line.startswith("new ")}
    assert created == {f"new {int(socket.AF_UNIX)}"}, created  # the daemon and its clients: Unix sockets only
    assert not [e for e in events if "getaddrinfo" in e or "gethostbyname" in e]
    assert all(e.split(" ", 1)[1].startswith("'/") for e in events if e.startswith(("socket.bind", "socket.connect")))


def test_socket_folder_must_be_private_and_ours(tmp_path, embedder, socket_env):
    service = Service(Library(tmp_path / "lib", create=True), embedder)
    socket_env.parent.mkdir(mode=0o777)
    os.chmod(socket_env.parent, 0o777)  # e.g. a shared folder named by STYLESEARCH_SOCKET
    with pytest.raises(StyleSearchError, match="not private"):
        service.serve()
    assert not socket_env.exists()
    if os.geteuid() == 0:
        os.chmod(socket_env.parent, 0o700)
        os.chown(socket_env.parent, pwd.getpwnam("nobody").pw_uid, -1)  # someone else's folder
        with pytest.raises(StyleSearchError, match="not private"):
            service.serve()


def as_nobody(action) -> str:
    """Run `action()` in a child process as the user nobody; its result or exception, as text."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, act, report, exit
        try:
            os.close(read_end)
            nobody = pwd.getpwnam("nobody")
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                outcome = f"result {action()!r}"
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                outcome = f"{type(exc).__name__}: {exc}"
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as fh:
        outcome = fh.read()
    os.waitpid(pid, 0)
    return outcome


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_other_users_are_refused(running):
    service, root, library = running
    save(drawing(seed=1), root / "a.png")
    assert wait_for(lambda: library.catalog.counts()["ok"] == 1)
    path = client.socket_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    ask = lambda: client.request("similar", {"query": str(root / "a.png"), "k": 1, "include_self": True}, timeout=10)  # noqa: E731
    assert ask()[0]["distance"] == 0  # its own user is served
    assert as_nobody(ask).startswith("DaemonUnavailable")  # the file modes keep others out...
    os.chmod(path.parent, 0o711)
    os.chmod(path, 0o666)
    refused = as_nobody(ask)  # ...and if they were loosened, the daemon checks who is calling
    assert "permission denied" in refused and "result" not in refused, refused
    assert ask()[0]["distance"] == 0


def raw_exchange(payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(str(client.socket_path()))
        try:
            conn.sendall(payload)
        except BrokenPipeError:  # the daemon stopped reading at its limit; its answer is there
            pass
        with conn.makefile("rb") as stream:
            return json.loads(stream.readline())


@pytest.mark.parametrize(
    "op, args, reason",
    [
        ("similar", {"query": "relative/a.png"}, "absolute"),
        ("similar", {"query": ["/etc/passwd"]}, "absolute path"),
        ("similar", {"query": "/tmp/a\0b.png"}, "NUL"),
        ("morph", {"a": "/etc/passwd", "b": "../b.png"}, "absolute"),
        ("enqueue", {"paths": "/home"}, "list"),
        ("forget", {"paths": [1]}, "absolute path"),
        ("similar", {"query": "/proc/self/environ"}, "empty file"),
        ("similar", {"query": "/dev/zero"}, "not a regular file"),
    ],
)
def test_request_paths_are_validated(running, op, args, reason):
    with pytest.raises(client.DaemonError, match=reason) as info:
        client.request(op, args, timeout=30)
    assert "internal error" not in str(info.value)


def test_malformed_and_oversized_requests_get_one_line_errors(running):
    assert "object" in raw_exchange(b"[1, 2]\n")["error"]
    assert "too long" in raw_exchange(b"{" + b" " * (2 << 20))["error"]  # 2 MiB, no end of line
    started = time.monotonic()
    assert client.request("status")["counts"]["ok"] == 0 and time.monotonic() - started < 5  # still answering
