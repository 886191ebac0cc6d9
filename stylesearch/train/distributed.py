"""Multi-GPU / multi-node through torchrun: DistributedDataParallel when WORLD_SIZE > 1.

Run `torchrun --nproc-per-node N -m stylesearch train finetune ...`; each rank draws its own
P x K batches (PKSampler's rank stream), gradients are averaged by DDP, and only rank 0
writes checkpoints and logs. CPU runs use the gloo backend, GPUs nccl.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    device: torch.device


def setup() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(0, 1, torch.device("cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return Dist(rank, world, device)


def wrap(module: nn.Module, d: Dist) -> nn.Module:
    """DDP around modules with trainable parameters, when distributed."""
    if d.world <= 1 or not any(p.requires_grad for p in module.parameters()):
        return module
    # find_unused_parameters: e.g. the logvar head gets no gradient when no VAE term is on
    return nn.parallel.DistributedDataParallel(
        module, device_ids=[d.device.index] if d.device.type == "cuda" else None, find_unused_parameters=True
    )
