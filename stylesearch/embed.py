"""Embedder: images in, style vectors (mu, or the fused embedding) out, fast.

Speed comes from five things, measured in bench/bench_core.py: JPEG draft decoding at the
model's scale, decoding in threads while the model runs (Pillow releases the GIL), passive
OpenMP waiting so those threads get the cores, conv+BN folding with channels_last memory,
and bf16 on CPUs with native bf16 (AVX512-BF16/AMX).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

# OpenMP threads that spin while idle steal the cores the decode threads need: passive
# waiting measured 68 -> 81 images/s end to end (bench/bench_core.py). Only takes effect if
# torch was not imported before this module.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from PIL import Image

from .errors import StyleSearchError, one_line
from .imaging import load_image, whiten_paper
from .model.checkpoint import load_encoder

T = TypeVar("T")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    if name not in DEVICES:
        raise StyleSearchError(f"unknown device {name!r} (choose from {', '.join(DEVICES)})")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StyleSearchError("--device cuda: no CUDA GPU is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise StyleSearchError("--device mps: Apple MPS is not available")
    return torch.device(name)


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """bf16 where the hardware computes it natively, fp32 elsewhere (emulated bf16 is slower)."""
    if precision not in PRECISIONS:
        raise StyleSearchError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if precision == "fp32":
        return torch.float32
    native = {
        "cpu": torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported(),
        "cuda": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    }.get(device.type, False)
    if precision == "bf16" or native:
        return torch.bfloat16
    return torch.float32


class Embedder:
    """A loaded model plus the pipeline that feeds it."""

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = 32,
        workers: int | None = None,
        cnn_only: bool = False,
        stage_statistics: bool = False,
    ) -> None:
        model, self.info = load_encoder(model_path, cnn_only=cnn_only, stage_statistics=stage_statistics)
        self.device = pick_device(device)
        self.dtype = pick_dtype(precision, self.device)
        self.batch_size = max(1, batch_size)
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.size = self.info.config.input_size
        from torch.fx.experimental.optimization import fuse  # conv+BN folding for inference

        model.trunk = fuse(model.trunk)
        self.model = model.to(self.device, memory_format=torch.channels_last).cast_for_inference(self.dtype)
        self.mean = torch.tensor(self.info.config.mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(self.info.config.std, device=self.device).view(1, 3, 1, 1) * 255

    @property
    def dim(self) -> int:
        return self.info.config.output_dim

    def preprocess(self, img: Image.Image) -> np.ndarray:
        """RGB image -> uint8 HxWx3 at the model's input size (shorter side, centre crop), tinted
        paper made white (`imaging.whiten_paper`)."""
        width, height = img.size
        side = min(width, height)
        box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
        fitted = img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
        return whiten_paper(np.asarray(fitted, dtype=np.uint8))

    def embed_arrays(self, batch: np.ndarray, features: bool = False) -> np.ndarray:
        """uint8 NxHxWx3 -> float32 N x dim (N x [mu, statistics] with `features`, for fitting
        a fused map). NHWC permuted to NCHW *is* channels_last."""
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)  # the model casts for its CNN
        with torch.inference_mode():
            out = self.model.style_features(x) if features else self.model.embed(x)
            return out.float().cpu().numpy()

    def embed_images(self, images: Iterable[Image.Image]) -> np.ndarray:
        arrays = [self.preprocess(img) for img in images]
        if not arrays:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(
            [self.embed_arrays(np.stack(arrays[i : i + self.batch_size])) for i in range(0, len(arrays), self.batch_size)]
        )

    def embed_file(self, path: str | os.PathLike) -> np.ndarray:
        """One file's vector; raises ImageLoadError with the reason if it cannot be read."""
        return self.embed_images([load_image(path, self.size)])[0]

    def stream(
        self, jobs: Iterable[T], load: Callable[[T], Image.Image | None] | None = None, features: bool = False
    ) -> Iterator[tuple[T, np.ndarray | None, str | None]]:
        """Embed many jobs, decoding in worker threads while the model runs.

        `load(job)` returns an image, or None when the job needs no model call (e.g. a vector
        reused by content hash). Yields (job, vector or None, error or None): failures and
        model-free jobs as soon as they are known, embedded jobs batch by batch. A job that
        fails yields its one-line error and the stream goes on. `features`: see embed_arrays.
        """
        load = load or (lambda job: load_image(job, self.size))

        def prepare(job: T) -> np.ndarray | None:
            img = load(job)
            return None if img is None else self.preprocess(img)

        batch: list[tuple[T, np.ndarray]] = []
        pending: deque = deque()
        todo = iter(jobs)
        depth = self.batch_size * 2
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            for job in todo:
                pending.append((job, pool.submit(prepare, job)))
                if len(pending) >= depth:
                    break
            while pending:
                job, future = pending.popleft()
                for nxt in todo:
                    pending.append((nxt, pool.submit(prepare, nxt)))
                    break
                try:
                    array = future.result()
                except Exception as exc:  # noqa: BLE001 - one bad file must not end the batch
                    yield job, None, one_line(exc) if isinstance(exc, StyleSearchError) else f"{type(exc).__name__}: {one_line(exc)}"
                    continue
                if array is None:
                    yield job, None, None
                    continue
                batch.append((job, array))
                if len(batch) >= self.batch_size:
                    yield from self._flush(batch, features)
                    batch = []
            yield from self._flush(batch, features)

    def embed_all(self, jobs: Iterable[T], load: Callable[[T], Image.Image] | None = None, features: bool = False,
                  ) -> tuple[np.ndarray, list[T], list[tuple[T, str]]]:
        """`stream` collected: (the vectors of the jobs that loaded, those jobs, (job, error)
        for each that did not), for scoring and fitting, which need every vector at once."""
        kept, rows, failed = [], [], []
        for job, vector, error in self.stream(jobs, load, features):
            if error:
                failed.append((job, error))
                continue
            kept.append(job)
            rows.append(vector)
        return (np.stack(rows) if rows else np.zeros((0, 0), np.float32)), kept, failed

    def _flush(self, batch: list[tuple[T, np.ndarray]], features: bool) -> Iterator[tuple[T, np.ndarray, None]]:
        if batch:
            vectors = self.embed_arrays(np.stack([a for _, a in batch]), features)
            for (job, _), vec in zip(batch, vectors, strict=True):
                yield job, vec, None
