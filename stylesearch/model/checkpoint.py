"""Checkpoints that describe themselves (architecture, input size, normalisation, name,
version, training data) and load offline with `torch.load(weights_only=True)`.

The model id (`name-version-<weights hash>`) is what the catalog stores next to every vector,
so vectors from two different models are never mixed in one index.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import StyleSearchError
from .encoder import EncoderConfig, StyleEncoder
from .locate import resolve_model_path
from .statistics import LAYOUT

FORMAT = "stylesearch-checkpoint/1"


@dataclass(frozen=True)
class ModelInfo:
    """A loaded checkpoint's metadata."""

    path: Path
    name: str
    version: str
    config: EncoderConfig
    weights_sha256: str
    trained: bool
    data: dict

    @property
    def model_id(self) -> str:
        return f"{self.name}-{self.version}-{self.weights_sha256[:12]}"


def _weights_hash(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_encoder(
    path: str | os.PathLike,
    model: StyleEncoder,
    *,
    name: str,
    version: str,
    trained: bool,
    data: dict | None = None,
    half: bool = True,
    extra_state: dict[str, torch.Tensor] | None = None,
) -> ModelInfo:
    """Write an encoder checkpoint atomically. `half` stores weights as fp16 (half the
    download size; embeddings change far less than bf16 inference does). `extra_state`
    (e.g. a decoder) is kept for training and ignored by inference."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in model.state_dict().items()}
    sha = _weights_hash(state)
    meta = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "config": model.config.to_dict(),
        "weights_sha256": sha,
        "trained": trained,
        "data": data or {},
    }
    blob = {"meta": meta, "encoder": state, "extra": extra_state or {}}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(blob, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return ModelInfo(path, name, version, model.config, sha, trained, meta["data"])


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict, validated; a one-line StyleSearchError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise StyleSearchError(f"model file not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise StyleSearchError(f"cannot load model {path}: not a stylesearch checkpoint ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("meta", {}).get("format") != FORMAT:
        raise StyleSearchError(f"cannot load model {path}: not a {FORMAT} file")
    return blob


def load_encoder(path: str | os.PathLike | None = None, *, cnn_only: bool = False,
                 stage_statistics: bool = False) -> tuple[StyleEncoder, ModelInfo]:
    """Load an encoder in eval mode (fp32; the embedder picks the run-time precision).
    `cnn_only` drops a fused map (to fit a new one), `stage_statistics` then adds the CNN's
    stage statistics to the features a map is fitted on."""
    path = resolve_model_path(path)
    blob = read_checkpoint(path)
    meta = blob["meta"]
    try:
        config = EncoderConfig.from_dict(meta["config"])
        config = config.cnn_only(stage_statistics) if cnn_only else config
    except (TypeError, ValueError) as exc:
        raise StyleSearchError(f"cannot load model {path}: {exc}") from None
    state = blob["encoder"]
    if cnn_only:
        state = {k: v for k, v in state.items() if not k.startswith("fusion") and k != "statistics_layout"}
    if config.fused_dim and int(state.get("statistics_layout", 1)) != LAYOUT:
        raise StyleSearchError(f"cannot load model {path}: its fused map was fitted on another version of the style "
                               f"statistics; refit it with `stylesearch train fuse DATA --init {path} --out NEW.pt`")
    model = StyleEncoder(config)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        raise StyleSearchError(f"cannot load model {path}: weights do not match {config.arch}") from exc
    model.eval()
    return model, replace(_info(path, meta), config=config)


def read_info(path: str | os.PathLike | None = None) -> ModelInfo:
    """Metadata only (no model built): cheap enough for `status`."""
    path = resolve_model_path(path)
    return _info(path, read_checkpoint(path)["meta"])


def _info(path: Path, meta: dict) -> ModelInfo:
    config = EncoderConfig.from_dict(meta["config"])
    return ModelInfo(path, meta["name"], meta["version"], config, meta["weights_sha256"], meta["trained"], meta["data"])
