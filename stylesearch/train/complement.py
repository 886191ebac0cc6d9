"""Train the CNN on what a fused model's style statistics miss (`train finetune --complement`).

Why: search ranks by the fused embedding, [the statistics' discriminant directions, mu], each
part of unit length and weighted. A CNN trained on mu alone spends its capacity on what the
statistics already measure (palette, line width). Here the metric losses see that fused
vector instead, with the statistics part fixed: the hardest negatives are the pairs the
statistics confuse, so the gradients teach mu what they miss. `train fuse` then refits the
map on the new CNN as usual (the statistics part does not depend on the CNN). Like the
fitted map, which centres mu on its mean over the fitting images, mu is centred before it
is scaled to unit length: on each batch's mean while training, on the validation images'
mean when validating. While training, the statistics are those of the augmented view
(turned, flipped, cropped), where search sees the upright whole image.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..errors import StyleSearchError
from ..model.checkpoint import load_encoder
from ..model.encoder import EncoderConfig, unit_parts
from ..model.statistics import StyleStatistics


class StatisticsPart(nn.Module):
    """(images, mu) -> [the fused model's statistics part, mu], scaled and weighted as that
    model fuses them. Fixed: buffers only, nothing here is trained."""

    def __init__(self, model: str | os.PathLike, trained: EncoderConfig) -> None:
        super().__init__()
        fused, info = load_encoder(model)
        config = info.config
        if len(config.fused_parts) != 2 or config.fused_head or config.stage_statistics:
            raise StyleSearchError(f"--complement {model}: not a model fused with unit-length parts, no learned head "
                                   "and no stage statistics (make one with `stylesearch train fuse --head-epochs 0 "
                                   "--no-stage-statistics`)")
        if config.input_size != trained.input_size:
            raise StyleSearchError(f"--complement {model}: its statistics were fitted at {config.input_size} px; "
                                   f"train at --input-size {config.input_size}")
        if config.fused_parts[1] != trained.embed_dim:
            raise StyleSearchError(f"--complement {model}: its mu part has {config.fused_parts[1]} dimensions; "
                                   f"train with --embed-dim {config.fused_parts[1]}")
        rows = config.fused_parts[0]
        self.parts = config.fused_parts
        self.statistics = StyleStatistics(trained.mean, trained.std)  # undoes the training images' normalisation
        self.register_buffer("weight", fused.fusion.weight[:rows, config.embed_dim:].detach().float().clone())
        self.register_buffer("bias", fused.fusion.bias[:rows].detach().float().clone())
        self.register_buffer("part_weights", fused.fusion_part_weights.detach().float().clone())
        self.model_id = info.model_id

    def statistics_part(self, x: torch.Tensor) -> torch.Tensor:
        """The fused model's map of the statistics of `x` (before scaling)."""
        with torch.autocast(x.device.type, enabled=False):  # bins and thresholds must not move under bf16
            return torch.nn.functional.linear(self.statistics(x).float(), self.weight, self.bias)

    def combine(self, part: torch.Tensor, mu: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """[part, mu - centre], each scaled to unit length and weighted as the fused model does."""
        return unit_parts(torch.cat([part, mu.float() - centre], 1), self.parts, self.part_weights)

    def forward(self, x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """A training batch's vectors, mu centred on the batch's mean."""
        return self.combine(self.statistics_part(x), mu, mu.float().mean(0).detach())
