"""Training settings as plain dataclasses (no torch import: the CLI builds one option per
field from these, with the help text below). Defaults are the paper's hyper-parameters."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import StyleSearchError

LOSS_SPECS = ("arc", "triplet", "vae", "gmvae", "arc+vae", "triplet+vae", "supcon", "supcon+vae")


def option(default, help: str, metavar: str | None = None):  # noqa: A002 - mirrors click's keyword
    return field(default=default, metadata={"help": help, "metavar": metavar})


@dataclass
class PretrainConfig:
    """SimCLR pre-training (paper 4.2.1)."""

    epochs: int = option(100, "Training epochs.")
    batch_size: int = option(2048, "Images per batch (two views each).")
    lr: float = option(2.4, "Peak LARS learning rate.")
    warmup_epochs: int = option(10, "Linear warm-up epochs before cosine decay.")
    weight_decay: float = option(1e-6, "LARS weight decay.")
    temperature: float = option(0.5, "NT-Xent temperature (not given in the paper; SimCLR's CIFAR value).")
    projection_dim: int = option(128, "Output size of the 2-layer MLP projection.")
    augment: str = option("simclr", "Augmentations: simclr (the paper's), style (keeps palette and line weight) or none.")
    input_size: int = option(224, "Training image size in pixels.")
    arch: str = option("resnet18", "Encoder trunk: resnet18 (paper) or resnet34.")
    seed: int = option(0, "Random seed (runs are repeatable).")
    workers: int = option(2, "Image decoding processes.")


@dataclass
class FinetuneConfig:
    """Fine-tuning (paper 3.1, 4.2.2); CPU runs lower p, k, input_size and epochs."""

    loss: str = option("triplet+vae", "Loss terms: the paper's Table 2 (arc, triplet, vae, gmvae, arc+vae, triplet+vae) "
                       "or supervised contrastive (supcon, supcon+vae).")
    epochs: int = option(40, "Training epochs.")
    epoch_steps: int = option(0, "Batches per epoch (0: one pass over the images). Validation and the choice of the "
                                 "best checkpoint happen once per epoch.")
    p: int = option(20, "Artists per batch.")
    k: int = option(20, "Images per artist per batch.")
    balance: str = option("artist", "Who gets an equal share of each batch: artist (the paper's) or source (the "
                                    "label part before '/', then artist; for mixing corpora of unequal size).")
    lr: float = option(1e-4, "Adam learning rate.")
    beta1: float = option(0.9, "Adam beta1.")
    beta2: float = option(0.999, "Adam beta2.")
    eps: float = option(1e-8, "Adam epsilon.")
    margin: float = option(1.0, "Triplet margin alpha and ArcFace angular margin.")
    arc_scale: float = option(10.0, "ArcFace scale s.")
    temperature: float = option(0.1, "SupCon temperature.")
    vae_weight: float = option(1.0, "Weight of L_VAE (computed per pixel, keeping the paper's reconstruction:KL ratio).")
    held_out: float = option(0.1, "Artists held out for validation: a fraction (<1) or a count.")
    validate: str = option("", "Validate on these artist-labelled images (same forms as DATA) instead of holding "
                               "out artists of DATA.", metavar="DATA")
    augment: str = option("style", "Augmentations: style, simclr or none.")
    complement: str = option("", "A fused model (e.g. the bundled one): the losses then see its statistics part "
                                 "beside mu, as search will, so the CNN learns what the statistics miss; refit "
                                 "the map with `train fuse` afterwards. Needs triplet, supcon or arc.",
                             metavar="FUSED.pt")
    zoom: float = option(1.0, "Style augmentation: crops are taken from the image resized to zoom x input size "
                              "(1: the whole image, as search sees it; 2: a quarter of it, at twice the detail).")
    input_size: int = option(224, "Training image size in pixels (a multiple of 32 with a VAE).")
    embed_dim: int = option(256, "Embedding (mu) size.")
    pooling: str = option("avg", "Feature pooling: avg (the paper's) or meanstd (channel mean/std of every stage).")
    arch: str = option("resnet18", "Encoder trunk: resnet18 (paper) or resnet34.")
    seed: int = option(0, "Random seed (runs are repeatable).")
    workers: int = option(2, "Image decoding processes.")
    name: str = option("stylesearch-style", "Model name stored in the checkpoint.")
    version: str = option("1", "Model version stored in the checkpoint.")

    def check(self) -> None:
        """Fail early, with the valid choices, before any data is loaded."""
        self.terms()
        if self.balance not in ("artist", "source"):
            raise StyleSearchError(f"unknown balance {self.balance!r} (choose artist or source)")
        if self.zoom < 1:
            raise StyleSearchError(f"--zoom must be at least 1 (got {self.zoom})")
        if self.complement and not self.terms() & {"triplet", "supcon", "arc"}:
            raise StyleSearchError(f"--complement needs a metric loss (triplet, supcon or arc), not {self.loss!r}")
        if self.complement and not os.path.isfile(os.path.expanduser(self.complement)):
            raise StyleSearchError(f"--complement: model file not found: {self.complement}")
        if self.epoch_steps < 0:
            raise StyleSearchError(f"--epoch-steps must be 0 or more (got {self.epoch_steps})")

    def terms(self) -> set[str]:
        if self.loss not in LOSS_SPECS:
            raise StyleSearchError(f"unknown loss {self.loss!r} (choose from {', '.join(LOSS_SPECS)})")
        return set(self.loss.split("+"))
