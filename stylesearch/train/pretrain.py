"""SimCLR pre-training of the encoder trunk (paper 3.2, 4.2.1): two augmented views per
image, a 2-layer MLP projection to 128-d, NT-Xent, LARS with linear warm-up then cosine
decay. Labels are not used, so any folders of illustrations will do."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ..model.checkpoint import save_encoder
from ..model.encoder import EncoderConfig, StyleEncoder
from .config import PretrainConfig
from .data import ImageDataset, augmentations, collate
from .lars import LARS
from .loop import DEFAULT_RUN, RunOptions, Trainer, batches, progress_bar, run_settings, seed_everything
from .losses import nt_xent


def projection_head(features: int, dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, features), nn.ReLU(inplace=True), nn.Linear(features, dim))


def pretrain(
    paths: list[str],
    out: Path,
    config: PretrainConfig,
    *,
    run: RunOptions = DEFAULT_RUN,
) -> dict:
    seed_everything(config.seed)
    encoder = StyleEncoder(EncoderConfig(arch=config.arch, input_size=config.input_size))
    cfg = encoder.config
    data = ImageDataset(paths, [0] * len(paths), augmentations(config.augment, config.input_size, cfg.mean, cfg.std),
                        views=2, load_size=config.input_size)
    batch_size = min(config.batch_size, len(paths))
    sampler_gen = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, generator=sampler_gen,
                                         num_workers=config.workers, collate_fn=collate, persistent_workers=config.workers > 0)
    steps_per_epoch = max(1, len(loader))
    total, warmup = steps_per_epoch * config.epochs, steps_per_epoch * config.warmup_epochs
    trainer = Trainer(out, {"trunk": encoder.trunk, "projector": projection_head(encoder.trunk.features, config.projection_dim)},
                      lambda params: LARS(params, lr=config.lr, weight_decay=config.weight_decay), run, run_settings(config))

    def learning_rate(step: int) -> float:
        if step < warmup:
            return config.lr * (step + 1) / warmup
        return config.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    trainer.log(event="start", config=asdict(config), images=len(paths))
    history = []
    with progress_bar(run.progress and trainer.is_main, "pretrain SimCLR") as bar:
        task = bar.add_task("train", total=total, epoch=trainer.epoch, losses="", rate="-", completed=trainer.step)
        while trainer.epoch < config.epochs:
            trainer.train_mode(True)
            started, seen, total_loss, steps = time.monotonic(), 0, 0.0, 0
            for x, _ in batches(loader):
                for group in trainer.optimizer.param_groups:
                    group["lr"] = learning_rate(trainer.step)
                x = x.to(trainer.device)
                view1, view2 = (x[:, i].contiguous(memory_format=torch.channels_last) for i in (0, 1))
                with trainer.autocast():
                    z1 = trainer.wrapped["projector"](trainer.wrapped["trunk"](view1))
                    z2 = trainer.wrapped["projector"](trainer.wrapped["trunk"](view2))
                    loss = nt_xent(z1.float(), z2.float(), config.temperature)
                trainer.backward(loss)
                value = float(loss.detach())
                seen, steps, total_loss = seen + len(x), steps + 1, total_loss + value
                trainer.log(nt_xent=round(value, 5), lr=learning_rate(trainer.step))
                bar.update(task, advance=1, epoch=trainer.epoch + 1, losses=f"nt_xent {value:.3f}",
                           rate=f"{seen / max(time.monotonic() - started, 1e-9):.1f}")
                trainer.maybe_save()
                if run.done(trainer.step):
                    break
            trainer.epoch += 1
            record = {"epoch": trainer.epoch, "nt_xent": round(total_loss / max(steps, 1), 5), "skipped_images": len(data.failed)}
            history.append(record)
            trainer.log(event="epoch", **record)
            if trainer.is_main:
                save_encoder(out, encoder, name="simclr-pretrain", version=str(trainer.epoch), trained=True,
                             data={"images": len(paths), "epochs": trainer.epoch, "method": "SimCLR"})
            trainer.save_state()
            if run.done(trainer.step):
                break
    return {"history": history, "skipped_images": sorted(data.failed)}
