"""Fit the fused embedding on artist-labelled images (closed form, minutes on a CPU):
[discriminant directions of the style statistics, the CNN's mu], each part weighted.

Why linear discriminant analysis on the statistics: it finds the directions along which
artists differ most relative to how much each artist's own works vary, which is what
nearest-neighbour search by style needs; shrinkage (Ledoit-Wolf) keeps it stable with few
images per artist. mu is kept as it is (fitting it in as well over-fitted to the artists it
was trained on), scaled so that its share of the distance is `cnn_weight` squared times the
statistics' share. On styles never seen in training this beat every trained CNN head we
tried (models/MODEL_CARD.md).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..embed import Embedder
from ..errors import StyleSearchError
from ..imaging import load_image
from ..model.checkpoint import load_encoder, save_encoder
from ..model.encoder import StyleEncoder
from .data import Example


def style_features(embedder: Embedder, examples: list[Example]) -> tuple[np.ndarray, list[Example], list[str]]:
    """[mu, statistics] of every readable example, loaded and cropped as search does (in
    float32: the map is fitted at full precision)."""
    kept, rows, failed = [], [], []
    for example, vector, error in embedder.stream(examples, lambda e: load_image(e.path, embedder.size), features=True):
        if error:
            failed.append(f"{example.path}: {error}")
            continue
        kept.append(example)
        rows.append(vector)
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32), kept, failed


def fit_map(features: np.ndarray, artists: list[str], embed_dim: int, *, dim: int = 256, cnn_weight: float = 1.0,
            shrinkage: float | str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of the fused map: features = [mu (embed_dim), statistics] ->
    [at most `dim` discriminant directions of the statistics, weighted mu], centred."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    classes = len(set(artists))
    if classes < 3:
        raise StyleSearchError(f"fitting a fused map needs at least 3 artists (got {classes})")
    if len(artists) <= classes:
        raise StyleSearchError(f"fitting a fused map needs artists with several images ({len(artists)} images, {classes} artists)")
    mu, stats = features[:, :embed_dim].astype(np.float64), features[:, embed_dim:].astype(np.float64)
    components = min(dim, classes - 1, stats.shape[1])
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage, n_components=components)
    try:
        lda.fit(stats, artists)
    except (ValueError, np.linalg.LinAlgError) as exc:  # e.g. a singular covariance with shrinkage 0
        raise StyleSearchError(f"cannot fit the fused map: {exc} (try --shrinkage auto)") from None
    scalings = lda.scalings_[:, :components]
    spread = np.sqrt(((stats - stats.mean(0)) @ scalings).var(0).sum())
    gain = cnn_weight * spread / max(np.sqrt(mu.var(0).sum()), 1e-12)
    kept_mu = embed_dim if cnn_weight > 0 else 0  # weight 0: statistics only, no zero columns
    weight = np.zeros((components + kept_mu, features.shape[1]))
    weight[:components, embed_dim:] = scalings.T
    weight[components:, :kept_mu] = gain * np.eye(kept_mu)
    return weight.astype(np.float32), (-weight @ features.mean(0)).astype(np.float32)


def fuse(
    examples: list[Example],
    init: str | os.PathLike,
    out: Path,
    *,
    dim: int = 256,
    cnn_weight: float = 1.0,
    shrinkage: float | str = "auto",
    device: str = "auto",
    name: str = "stylesearch-style",
    version: str = "1",
) -> dict:
    """Write `out`: `init`'s encoder with a fused map fitted on `examples` (its own map, if
    it has one, is replaced)."""
    started = time.monotonic()
    embedder = Embedder(init, device=device, precision="fp32", cnn_only=True)
    features, kept, failed = style_features(embedder, examples)
    if not kept:
        raise StyleSearchError("no readable images to fit the fused map on")
    weight, bias = fit_map(features, [e.artist for e in kept], embedder.info.config.embed_dim, dim=dim,
                           cnn_weight=cnn_weight, shrinkage=shrinkage)
    cnn, info = load_encoder(init, cnn_only=True)  # unfolded weights: the Embedder's are folded for inference
    model = StyleEncoder(replace(info.config, fused_dim=len(weight)))
    model.load_state_dict(cnn.state_dict() | {"fusion.weight": torch.from_numpy(weight), "fusion.bias": torch.from_numpy(bias),
                                              "statistics_layout": model.statistics_layout})
    summary = {
        "fused_from": embedder.info.model_id,
        "fusion_images": len(kept),
        "fusion_artists": len({e.artist for e in kept}),
        "fusion_dim": len(weight),
        "cnn_weight": cnn_weight,
        "shrinkage": shrinkage,
    }
    save_encoder(out, model, name=name, version=version, trained=True, half=False,
                 data=info.data | summary)
    summary["seconds"] = round(time.monotonic() - started, 1)
    return {"summary": summary, "history": [summary], "skipped_images": failed}
