"""The paper's encoder (Park & Matsushita 2024, Fig. 2): ResNet18 trunk (torchvision layout), FC heads to mu and
log-variance of a 256-d latent. The style embedding is mu; z's sampling noise only matters
when training the VAE, which adds a decoder to this same module.

Optionally (`fused_dim` > 0) the embedding is instead a fitted linear map of mu together with
hand-made style statistics of the image (`statistics.py`), optionally followed by a small
learned head on the same features (`fused_head` > 0); `stylesearch train fuse` fits both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import STAGE_STATISTICS, TRUNKS, ResNetTrunk
from .statistics import LAYOUT, StyleStatistics


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild the encoder and feed it; stored in every checkpoint."""

    arch: str = "resnet18"
    embed_dim: int = 256
    input_size: int = 224
    pooling: str = "avg"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    extra: dict = field(default_factory=dict)
    fused_dim: int = 0  # > 0: the embedding is a linear map of [mu, style statistics] to this size
    # sizes of consecutive parts of the fused output that are each scaled to unit length and
    # then weighted (the weights are a buffer, saved and hashed with the map); (): used as is
    fused_parts: tuple[int, ...] = ()
    # > 0: hidden width of a learned head on [mu, style statistics] whose output is the last
    # fused part (the linear map gives the parts before it)
    fused_head: int = 0
    # the fused map also reads the CNN's channel mean/std of its input and of each stage
    # (STAGE_STATISTICS values beside mu and the style statistics)
    stage_statistics: bool = False

    def __post_init__(self) -> None:
        if self.fused_parts and sum(self.fused_parts) != self.fused_dim:
            raise ValueError(f"fused parts {self.fused_parts} do not add up to fused_dim {self.fused_dim}")
        if self.fused_head and len(self.fused_parts) < 2:
            raise ValueError("a fused head needs fused parts: the linear map's and the head's")
        if self.stage_statistics and self.pooling != "avg":
            raise ValueError(f"stage statistics are for 'avg' pooling ({self.pooling!r} pools them already)")

    @property
    def output_dim(self) -> int:
        """Size of the vectors the model returns (what the index stores)."""
        return self.fused_dim or self.embed_dim

    def cnn_only(self, stage_statistics: bool = False) -> EncoderConfig:
        """The same encoder without a fused map (to fit a new one, or to compare with one);
        `stage_statistics`: its features for fitting include the CNN's stage statistics."""
        return replace(self, fused_dim=0, fused_parts=(), fused_head=0, stage_statistics=stage_statistics)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EncoderConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(float(v) for v in known[key])
        if "fused_parts" in known:
            known["fused_parts"] = tuple(int(v) for v in known["fused_parts"])
        return cls(**known)


class StyleEncoder(nn.Module):
    """x -> (mu, logvar). Inference uses `embed`: mu, or the fused map of mu and the style
    statistics when the model has one."""

    def __init__(self, config: EncoderConfig = EncoderConfig()) -> None:
        super().__init__()
        if config.arch not in TRUNKS:
            raise ValueError(f"unknown encoder architecture {config.arch!r} (known: {', '.join(TRUNKS)})")
        self.config = config
        self.trunk = ResNetTrunk(TRUNKS[config.arch], config.pooling, stage_stats=config.stage_statistics)
        features = self.trunk.features
        # statistics pooled from different stages differ in scale by orders of magnitude
        self.norm = nn.BatchNorm1d(features) if config.pooling == "meanstd" else nn.Identity()
        self.fc_mu = nn.Linear(features, config.embed_dim)
        self.fc_logvar = nn.Linear(features, config.embed_dim)
        self.statistics = StyleStatistics(config.mean, config.std)  # no weights: free unless used
        if config.fused_dim:
            inputs = config.embed_dim + StyleStatistics.features + (STAGE_STATISTICS if config.stage_statistics else 0)
            head_dim = config.fused_parts[-1] if config.fused_head else 0
            self.fusion = nn.Linear(inputs, config.fused_dim - head_dim)
            if config.fused_head:
                self.fusion_head = fusion_head(inputs, config.fused_head, head_dim)
            # saved and hashed with the weights: a map fitted on other statistics is refused
            # on load, and a new layout gives a new model id
            self.register_buffer("statistics_layout", torch.tensor(LAYOUT))
            if config.fused_parts:
                self.register_buffer("fusion_part_weights", torch.ones(len(config.fused_parts)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, _ = self._trunk(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The style embedding: mu (the logvar head is skipped: inference never needs it), or
        the fused map of mu and the style statistics when the model has one. `x` may be
        float32 for a bf16 model: the CNN gets it in the model's dtype, the statistics and
        the fitted map run in float32 (bf16 would move pixels across their bins;
        `cast_for_inference` keeps the map's weights in float32)."""
        if not self.config.fused_dim:
            return self._cnn(x)[0]
        return fused_output(self.style_features(x), self.fusion, getattr(self, "fusion_head", None),
                            self.config.fused_parts, getattr(self, "fusion_part_weights", None))

    def cast_for_inference(self, dtype: torch.dtype) -> StyleEncoder:
        """Cast the CNN to `dtype` and leave the fitted map and head as loaded, in float32
        (why: a map rounded to bf16 moves rankings; it is tiny next to the CNN)."""
        for name, child in self.named_children():
            if not name.startswith("fusion"):
                child.to(dtype)
        return self

    def style_features(self, x: torch.Tensor) -> torch.Tensor:
        """[mu, style statistics, with `stage_statistics` the CNN's stage statistics] in
        float32: what the fused map is fitted on."""
        mu, stages = self._cnn(x)
        return torch.cat([mu.float(), self.statistics(x).float(), stages.float()], 1)

    def _cnn(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, the stage statistics: N x 0 without them), in the CNN's dtype."""
        h, stages = self._trunk(x.to(self.fc_mu.weight.dtype))
        return self.fc_mu(h), stages

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the normalised pooled features mu is computed from, the stage statistics). The
        trunk may be an fx-folded copy (the Embedder's), so the pooled width comes from fc_mu."""
        h = self.trunk(x)
        pooled = self.fc_mu.in_features
        return self.norm(h[:, :pooled]), h[:, pooled:]


def fusion_head(inputs: int, hidden: int, out: int) -> nn.Sequential:
    """The learned part of a fused embedding: one hidden layer on [mu, style statistics]
    (standardised by its first layer). Why a non-linear head beside the linear map: an artist
    whose works fall into several looks (an icon theme's app, document and emblem icons)
    is not one Gaussian, which the discriminant analysis assumes."""
    return nn.Sequential(nn.Linear(inputs, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(hidden, out))


def fused_output(features: torch.Tensor, linear: Callable[[torch.Tensor], torch.Tensor], head: nn.Module | None,
                 parts: tuple[int, ...], weights: torch.Tensor | None) -> torch.Tensor:
    """The fused embedding of [mu, statistics]: the linear map's parts, then the head's, each
    part unit length times its weight (`parts` empty: as is). One function for the saved
    model and for the map while it is fitted, so what fitting scores is what search computes."""
    vectors = linear(features)
    if head is not None:
        vectors = torch.cat([vectors, head(features)], 1)
    return unit_parts(vectors, parts, weights) if parts else vectors


def unit_parts(vectors: torch.Tensor, sizes: tuple[int, ...], weights: torch.Tensor) -> torch.Tensor:
    """Scale each part of every vector to unit length, then by its weight. Why: the squared
    Euclidean distance on unit parts is a sum of cosine distances weighted by the squared
    weights, so how strongly a work is drawn (much ink, many colours) stops outweighing how
    it is drawn; it raised cross-validated mAP@R on the training styles from 38.1 to 41.5
    (models/MODEL_CARD.md, version 5)."""
    chunks = vectors.split(list(sizes), 1)
    return torch.cat([weight * F.normalize(chunk, dim=1) for chunk, weight in zip(chunks, weights, strict=True)], 1)
