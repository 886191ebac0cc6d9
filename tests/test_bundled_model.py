"""The model in models/ is the trained one and still sees style: a broken, swapped or
untrained file fails here. Images: tests/data/style_check (our own drawings, see make.py)."""

from pathlib import Path

import numpy as np
import torch

from stylesearch.embed import Embedder
from stylesearch.evaluate import retrieval_scores
from stylesearch.model.checkpoint import load_encoder, save_encoder
from stylesearch.model.encoder import StyleEncoder

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "stylesearch-default.pt"
IMAGES = sorted((ROOT / "tests" / "data" / "style_check").glob("*.png"))


def grouping(model: Path, precision: str = "fp32") -> dict[str, float]:
    """Retrieval scores of the 3 artists x 6 subjects: same artist = relevant."""
    embedder = Embedder(model, precision=precision)
    vectors = np.stack([embedder.embed_file(p) for p in IMAGES])
    labels = np.unique([p.name.split("-")[0] for p in IMAGES], return_inverse=True)[1]
    return retrieval_scores(vectors, labels, k=5)


def test_shipped_model_is_trained_and_under_50_mb():
    _, info = load_encoder(SHIPPED)
    assert info.trained and SHIPPED.stat().st_size < 50 * 2**20
    assert len(IMAGES) == 18


def test_shipped_model_groups_drawings_by_artist_where_a_random_one_does_not(tmp_path):
    shipped = grouping(SHIPPED)
    model, info = load_encoder(SHIPPED)
    torch.manual_seed(0)
    random = tmp_path / "random.pt"
    # a random network of the same CNN shape (the style statistics alone already group these
    # drawings well: a random map over them scores 0.75, so it would not be a fair "untrained")
    save_encoder(random, StyleEncoder(info.config.cnn_only()).eval(), name="random", version="0", trained=False)
    baseline = grouping(random)
    assert shipped["mAP@R"] >= 0.75, shipped
    assert shipped["mAP@R"] > baseline["mAP@R"] + 0.1, (shipped, baseline)


def test_shipped_model_keeps_the_grouping_in_bf16():
    """bf16 is what `Embedder` picks by default on CPUs that have it."""
    assert grouping(SHIPPED, "bf16")["mAP@R"] >= 0.75
