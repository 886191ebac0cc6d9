import os
from pathlib import Path

import pytest
import torch

from stylesearch.model.checkpoint import save_encoder
from stylesearch.model.encoder import EncoderConfig, StyleEncoder

from samples import drawing, save

TINY = EncoderConfig(embed_dim=16, input_size=32)


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
    monkeypatch.setenv("STYLESEARCH_CONFIG", str(tmp_path / "no-config.toml"))
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
def embedder(tiny_model):
    from stylesearch.embed import Embedder

    return Embedder(tiny_model, batch_size=4, workers=2)


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "2")
