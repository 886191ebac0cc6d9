"""What every training run shares: device choice, resumable state saved every N minutes,
a JSONL log of every loss term, rich progress, and distributed (torchrun) awareness."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..embed import pick_device
from ..errors import StyleSearchError
from . import distributed


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out, as opposed to what it trains (the config)."""

    device: str = "auto"
    resume: bool = False
    checkpoint_minutes: float = 10.0
    progress: bool = True
    max_steps: int | None = None  # stop early (smoke runs)

    def done(self, step: int) -> bool:
        return self.max_steps is not None and step >= self.max_steps


DEFAULT_RUN = RunOptions()
# settings a run may change when it resumes: how long it goes on, how it loads, what it is called
RESUMABLE = frozenset({"epochs", "workers", "name", "version"})


def run_settings(config, **extra) -> dict:
    """What a resumed run must share with the saved state: the config's fields but RESUMABLE
    ones, plus `extra` (e.g. the id of a model the run depends on)."""
    return {k: v for k, v in asdict(config).items() if k not in RESUMABLE} | extra


class Trainer:
    """Owns the modules and optimiser of one run and their on-disk state.

    State lives next to the output (`OUT.state`), written atomically; `resume=True` picks
    up at the first unfinished epoch with the same RNG streams.
    """

    def __init__(
        self,
        out: Path,
        modules: dict[str, nn.Module],
        optimizer_factory,
        run: RunOptions,
        settings: dict | None = None,
    ) -> None:
        self.out = Path(out)
        self.run = run
        self.dist = distributed.setup()
        self.device = self.dist.device if self.dist.world > 1 else pick_device(run.device)
        self.modules = {name: m.to(self.device, memory_format=torch.channels_last) for name, m in modules.items()}
        self.wrapped = {name: distributed.wrap(m, self.dist) for name, m in self.modules.items()}
        params = [p for m in self.modules.values() for p in m.parameters()]
        self.optimizer = optimizer_factory(params)
        self.state_path = self.out.with_name(self.out.name + ".state")
        self.log_path = self.out.with_name(self.out.name + ".log.jsonl")
        self.every = run.checkpoint_minutes * 60
        self.last_save = time.monotonic()
        self.epoch = 0
        self.step = 0
        self.best: float | None = None
        self.amp = self.device.type == "cuda"
        self.settings = settings
        if run.resume:
            self.restore()

    @property
    def is_main(self) -> bool:
        return self.dist.rank == 0

    def restore(self) -> None:
        if not self.state_path.is_file():
            raise StyleSearchError(f"--resume: no saved state at {self.state_path}")
        state = torch.load(self.state_path, map_location=self.device, weights_only=False)  # our own file
        saved = state.get("settings")
        if saved is not None and self.settings is not None and saved != self.settings:
            changed = ", ".join(f"{k}: {saved.get(k)!r} -> {self.settings.get(k)!r}"
                                for k in sorted(set(saved) | set(self.settings)) if saved.get(k) != self.settings.get(k))
            raise StyleSearchError(f"--resume: {self.state_path} was saved with other settings ({changed}); "
                                   "run with the saved ones, or without --resume to start afresh")
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.best = state["epoch"], state["step"], state["best"]
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])

    def save_state(self) -> None:
        if not self.is_main:
            return
        state = {
            "modules": {name: m.state_dict() for name, m in self.modules.items()},
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best": self.best,
            "settings": self.settings,
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        }
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_path)
        self.last_save = time.monotonic()

    def maybe_save(self) -> None:
        if time.monotonic() - self.last_save >= self.every:
            self.save_state()

    def log(self, **record) -> None:
        if self.is_main:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"time": round(time.time(), 3), "epoch": self.epoch, "step": self.step, **record}) + "\n")

    @contextmanager
    def autocast(self) -> Iterator[None]:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            yield

    def train_mode(self, training: bool = True) -> None:
        for module in self.modules.values():
            module.train(training)

    def backward(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1


def progress_bar(enabled: bool, description: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(f"[bold]{description}"), TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"), TextColumn("{task.fields[rate]} img/s"), TimeRemainingColumn(), disable=not enabled,
    )


def batches(loader: Iterable) -> Iterator:
    """Skip batches in which every image failed to load."""
    return (batch for batch in loader if batch is not None)
