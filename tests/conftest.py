import os
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from stylesearch.model.checkpoint import save_encoder
from stylesearch.model.encoder import EncoderConfig, StyleEncoder

from samples import drawing, save

TINY = EncoderConfig(embed_dim=16, input_size=32)
SETTLE = 0.3  # the daemon's settle time in tests


def make_model(path: Path, seed: int, name: str = "tiny-test") -> Path:
    """A tiny random-init checkpoint (ResNet18 at 32 px, 16-d): fast, real code path."""
    torch.manual_seed(seed)
    save_encoder(path, StyleEncoder(TINY).eval(), name=name, version=str(seed), trained=False)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("models") / "tiny.pt", seed=1)


@pytest.fixture(scope="session")
def other_model(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("models") / "other.pt", seed=2, name="tiny-other")


@pytest.fixture
def env(tmp_path, tiny_model, monkeypatch) -> Path:
    """Isolated settings: a library in tmp, the tiny model, no user config."""
    library = tmp_path / "library"
    monkeypatch.setenv("STYLESEARCH_LIBRARY", str(library))
    monkeypatch.setenv("STYLESEARCH_MODEL", str(tiny_model))
    monkeypatch.setenv("STYLESEARCH_CONFIG", os.devnull)
    return library


@pytest.fixture
def comics(tmp_path) -> Path:
    """A folder of 3 'artists' x 4 drawings."""
    root = tmp_path / "comics"
    for style in range(3):
        for i in range(4):
            save(drawing(seed=10 * style + i, style=style), root / f"artist{style}" / f"page{i}.png")
    return root


@pytest.fixture
def tmpfs():
    """`with tmpfs(folder):` a small tmpfs mounted on `folder` (made if missing), unmounted
    after: a drive plugged in and pulled out, on its own file system. Root only; skipped
    where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")

    @contextmanager
    def mounted(folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=True)

    return mounted


@pytest.fixture
def embedder(tiny_model):
    from stylesearch.embed import Embedder

    return Embedder(tiny_model, batch_size=4, workers=2)


def wait_for(predicate, timeout=20.0) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def socket_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLESEARCH_SOCKET", str(tmp_path / "run" / "daemon.sock"))
    return tmp_path / "run" / "daemon.sock"


@pytest.fixture
def running(tmp_path, embedder, socket_env):
    """A Service serving a library with one watched root, in a background thread."""
    from stylesearch.daemon.service import Service
    from stylesearch.library.folder import Library

    root = tmp_path / "watched"
    root.mkdir()
    library = Library(tmp_path / "lib", create=True)
    service = Service(library, embedder, settle_s=SETTLE, save_every_s=0.5)
    thread = threading.Thread(target=service.serve, args=([str(root)],), daemon=True)
    thread.start()
    assert wait_for(lambda: socket_env.exists() and service.watcher.watches)
    yield service, root, library
    service.shutdown()
    thread.join(timeout=30)
    library.close()


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "2")
