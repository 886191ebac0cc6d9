"""Fit the fused embedding on artist-labelled images (closed form, minutes on a CPU):
[discriminant directions of the style statistics, the CNN's mu], each part weighted.

Why linear discriminant analysis on the statistics: it finds the directions along which
artists differ most relative to how much each artist's own works vary, which is what
nearest-neighbour search by style needs; shrinkage (Ledoit-Wolf) keeps it stable with few
images per artist. mu is kept as it is (fitting it in as well over-fitted to the artists it
was trained on). By default each part is then scaled to unit length and mu weighted by
`cnn_weight` (squared distances become cosine distances weighted by the squared weights); without normalising, mu is scaled so that
its share of the variance is `cnn_weight` squared. On styles never seen in training this beat
every trained CNN head we tried (models/MODEL_CARD.md).

With `stage_statistics` the statistics also include the CNN's channel mean and standard
deviation of its input and of each stage (texture at four scales as the trained CNN sees
it; mu keeps only the last stage's average). Off by default: cross-validation on training
styles favoured them, but those styles had trained the CNN, and on unseen styles they
scored worse (models/MODEL_CARD.md, after version 9).

A learned head (`head_epochs` > 0, normalised parts only) adds a third part: a one-hidden-layer
network on the same features, trained with a cosine softmax over the fitting artists
(ArcFace without margin). It sees what a linear map cannot (an artist with several looks),
and the discriminant directions keep what it would over-fit; the two together raised
cross-validated mAP@R and NMI on the training styles (models/MODEL_CARD.md, version 8).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..embed import Embedder
from ..errors import StyleSearchError
from ..imaging import load_image
from ..model.checkpoint import load_encoder, save_encoder
from ..model.encoder import StyleEncoder, fused_output, fusion_head
from .data import Example, jpeg_copy, noisy_copy, source_of
from .losses import ArcFace


def style_features(embedder: Embedder, examples: list[Example], copy: tuple[str, int] | None = None,
                   ) -> tuple[np.ndarray, list[Example], list[str]]:
    """[mu, statistics] of every readable example, loaded and cropped as search does (in
    float32: the map is fitted at full precision); with `copy`, of its ("jpeg", quality) copy
    or of its ("noise", level) copy (`noisy_copy` of the pixels the model reads)."""

    def load(example: Example):
        img = load_image(example.path, embedder.size)
        if copy is None:
            return img
        kind, amount = copy
        if kind == "jpeg":
            return jpeg_copy(img, amount)
        # at the model's size already: preprocess crops nothing more and keeps the noise
        return Image.fromarray(noisy_copy(embedder.preprocess(img), amount))

    rows, kept, failed = embedder.embed_all(examples, load, features=True)
    return rows, kept, [f"{example.path}: {error}" for example, error in failed]


@dataclass(frozen=True)
class FittedMap:
    """The fused map: vectors = unit_parts(features @ weight.T + bias) when `parts` is set."""

    weight: np.ndarray
    bias: np.ndarray
    parts: tuple[int, ...] = ()
    part_weights: tuple[float, ...] = ()
    head: torch.nn.Sequential | None = None  # in eval mode; its output is the last part

    @property
    def output_dim(self) -> int:
        return sum(self.parts) if self.parts else len(self.weight)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """What the fused model computes from [mu, statistics] (float32, as it does)."""
        weight, bias = torch.from_numpy(self.weight), torch.from_numpy(self.bias)  # float32, as fit_map stores them
        with torch.inference_mode():
            return fused_output(torch.from_numpy(np.asarray(features, np.float32)), lambda f: f @ weight.T + bias,
                                self.head, self.parts, torch.tensor(self.part_weights)).numpy()


def fit_map(features: np.ndarray, artists: list[str], embed_dim: int, *, dim: int = 256, cnn_weight: float = 0.75,
            shrinkage: float | str = "auto", normalise: bool = True, head_epochs: int = 0, head_hidden: int = 1024,
            head_weight: float = 1.25, synthetic_weight: float = 1.0, seed: int = 0) -> FittedMap:
    """The fused map: features = [mu (embed_dim), statistics (everything after mu: the style
    statistics, and the CNN's stage statistics when fitted with them)] -> [at most `dim` discriminant
    directions of the statistics, mu, and with `head_epochs` a learned head of `dim`],
    centred; weighted as the module docstring says."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    classes = len(set(artists))
    if classes < 3:
        raise StyleSearchError(f"fitting a fused map needs at least 3 artists (got {classes})")
    if len(artists) <= classes:
        raise StyleSearchError(f"fitting a fused map needs artists with several images ({len(artists)} images, {classes} artists)")
    mu, stats = features[:, :embed_dim].astype(np.float64), features[:, embed_dim:].astype(np.float64)
    components = min(dim, classes - 1, stats.shape[1])
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage, n_components=components)
    rows = discriminant_rows(artists, synthetic_weight)
    try:
        lda.fit(stats[rows], np.asarray(artists)[rows])
    except (ValueError, np.linalg.LinAlgError) as exc:  # e.g. a singular covariance with shrinkage 0
        raise StyleSearchError(f"cannot fit the fused map: {exc} (try --shrinkage auto)") from None
    scalings = lda.scalings_[:, :components]
    if normalise:
        gain = 1.0  # the part is scaled to unit length anyway; cnn_weight is a part weight
    else:
        spread = np.sqrt(((stats - stats.mean(0)) @ scalings).var(0).sum())
        gain = cnn_weight * spread / max(np.sqrt(mu.var(0).sum()), 1e-12)
    kept_mu = embed_dim if cnn_weight > 0 else 0  # weight 0: statistics only, no zero columns
    weight = np.zeros((components + kept_mu, features.shape[1]))
    weight[:components, embed_dim:] = scalings.T
    weight[components:, :kept_mu] = gain * np.eye(kept_mu)
    bias = -weight @ features.mean(0)
    parts, head = [], None
    if normalise:
        parts = [(components, 1.0), (kept_mu, cnn_weight)] if kept_mu else [(components, 1.0)]
        if head_epochs > 0 and head_weight > 0:
            head = train_head(features, artists, hidden=head_hidden, dim=dim, epochs=head_epochs, seed=seed)
            parts.append((dim, head_weight))
    return FittedMap(weight.astype(np.float32), bias.astype(np.float32),
                     tuple(size for size, _ in parts), tuple(w for _, w in parts), head)


def discriminant_rows(artists: list[str], synthetic_weight: float) -> np.ndarray:
    """Rows the discriminant analysis is fitted on: every image once, or, with synthetic
    artists (the `synthetic/` source) among real ones and `synthetic_weight` < 1, every real
    image round(1 / synthetic_weight) times. Why: 36,000 synthetic images would otherwise set
    the within-artist spread the map suppresses, where a real set's spread (one emoji set's
    many subjects) is what search meets. Repeating rows also lowers the Ledoit-Wolf shrinkage.
    It raised cross-validated scores on the training styles but not on held-out ones, so the
    bundled model does not use it (models/MODEL_CARD.md)."""
    synthetic = np.array([source_of(a) == "synthetic" for a in artists])
    if synthetic_weight >= 1 or synthetic.all() or not synthetic.any():
        return np.arange(len(artists))
    repeats = np.where(synthetic, 1, max(1, round(1 / synthetic_weight)))
    return np.repeat(np.arange(len(artists)), repeats)


def train_head(features: np.ndarray, artists: list[str], *, hidden: int, dim: int, epochs: int, seed: int = 0,
               batch: int = 256, lr: float = 1e-3, min_steps: int = 1000) -> torch.nn.Sequential:
    """A `fusion_head` trained to tell the artists apart (cosine softmax, scale 16; one-cycle
    Adam; batches drawn at random, at least `min_steps` of them, so a small library gets
    enough updates too). Its first layer absorbs the standardisation of the features, so the
    model feeds it raw [mu, statistics]. A feature constant over the fitting images is left
    out (weight 0), and a scale under 1e-3 counts as 1e-3: a query that differs there from
    every fitting image must not swamp the head."""
    with torch.random.fork_rng():  # seeded without touching the caller's random state
        torch.manual_seed(seed)  # the layers' initial weights and dropout
        generator = torch.Generator().manual_seed(seed)  # the batches
        x = torch.from_numpy(np.asarray(features, np.float32))
        mean, std = x.mean(0), x.std(0)
        std = torch.where(std > 1e-6, std.clamp_min(1e-3), torch.inf)
        x = (x - mean) / std
        _, labels = np.unique(np.asarray(artists), return_inverse=True)
        y = torch.from_numpy(labels)
        head = fusion_head(x.shape[1], hidden, dim)
        loss_fn = ArcFace(dim, int(y.max()) + 1, margin=0.0, scale=16.0)
        optimiser = torch.optim.AdamW([*head.parameters(), *loss_fn.parameters()], lr=lr, weight_decay=1e-4)
        steps = max(min_steps, epochs * len(x) // batch)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps)
        head.train()
        for _ in range(steps):
            picked = torch.randint(len(x), (batch,), generator=generator)
            loss = loss_fn(head(x[picked]), y[picked])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    first = head[0]
    with torch.no_grad():  # head(x_std) == head'(x): W' = W / std, b' = b - W' mean
        first.weight /= std
        first.bias -= first.weight @ mean
    return head.eval()


def fuse(
    examples: list[Example],
    init: str | os.PathLike,
    out: Path,
    *,
    dim: int = 256,
    cnn_weight: float = 0.75,
    shrinkage: float | str = "auto",
    normalise: bool = True,
    head_epochs: int = 15,
    head_weight: float = 1.25,
    synthetic_weight: float = 1.0,
    jpeg_copies: tuple[int, ...] = (),
    noise_copies: tuple[int, ...] = (),
    stage_statistics: bool = False,
    device: str = "auto",
    name: str = "stylesearch-style",
    version: str = "1",
) -> dict:
    """Write `out`: `init`'s encoder with a fused map fitted on `examples` (its own map, if
    it has one, is replaced). `jpeg_copies`, `noise_copies`: also fit on each image's JPEG
    copy at these qualities and its noisy copy at these levels, as more works of its artist,
    so compression and noise are variation the map ignores."""
    started = time.monotonic()
    embedder = Embedder(init, device=device, precision="fp32", cnn_only=True, stage_statistics=stage_statistics)
    features, kept, failed = style_features(embedder, examples)
    if not kept:
        raise StyleSearchError("no readable images to fit the fused map on")
    copies = [style_features(embedder, kept, copy)[0]
              for copy in [("jpeg", quality) for quality in jpeg_copies] + [("noise", level) for level in noise_copies]]
    features = np.concatenate([features, *copies])
    fitted = fit_map(features, [e.artist for e in kept] * (1 + len(copies)), embedder.info.config.embed_dim, dim=dim,
                     cnn_weight=cnn_weight, shrinkage=shrinkage, normalise=normalise, head_epochs=head_epochs,
                     head_weight=head_weight, synthetic_weight=synthetic_weight)
    # unfolded weights: the Embedder's are folded for inference
    cnn, info = load_encoder(init, cnn_only=True, stage_statistics=stage_statistics)
    hidden = fitted.head[0].out_features if fitted.head is not None else 0
    model = StyleEncoder(replace(info.config, fused_dim=fitted.output_dim, fused_parts=fitted.parts, fused_head=hidden))
    fusion = {"fusion.weight": torch.from_numpy(fitted.weight), "fusion.bias": torch.from_numpy(fitted.bias),
              "statistics_layout": model.statistics_layout}
    if fitted.parts:
        fusion["fusion_part_weights"] = torch.tensor(fitted.part_weights)
    if fitted.head is not None:
        fusion |= {f"fusion_head.{key}": value for key, value in fitted.head.state_dict().items()}
    model.load_state_dict(cnn.state_dict() | fusion)
    summary = {
        "fused_from": embedder.info.model_id,
        "fusion_images": len(kept),  # copies not counted
        "fusion_artists": len({e.artist for e in kept}),
        "fusion_dim": fitted.output_dim,
        "cnn_weight": cnn_weight,
        "head_epochs": head_epochs if fitted.head is not None else 0,
        "head_weight": head_weight if fitted.head is not None else None,
        "stage_statistics": stage_statistics,
        "synthetic_weight": synthetic_weight,
        "jpeg_copies": list(jpeg_copies),
        "noise_copies": list(noise_copies),
        "normalised_parts": bool(fitted.parts),
        "shrinkage": shrinkage,
    }
    save_encoder(out, model, name=name, version=version, trained=True, half=False,
                 data=info.data | summary)
    summary["seconds"] = round(time.monotonic() - started, 1)
    return {"summary": summary, "history": [summary], "skipped_images": failed}
