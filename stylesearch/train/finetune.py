"""Fine-tuning (paper 3.1, 4.2.2): the encoder with any Table 2 loss combination, P x K
batches, Adam; validated each epoch on held-out artists, best checkpoint kept.

Loss specs: arc, triplet, vae, gmvae, arc+vae, triplet+vae (the paper's proposal), and our
supcon, supcon+vae. Models without a VAE use mu alone, which is the paper's "one FC layer
to a 256-d embedding". With `complement`, the metric losses and validation see mu beside a
fused model's statistics part (complement.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..errors import StyleSearchError
from ..evaluate import score
from ..model.checkpoint import read_checkpoint, save_encoder
from ..model.decoder import StyleDecoder
from ..model.encoder import EncoderConfig, StyleEncoder
from . import losses
from .complement import StatisticsPart
from .config import FinetuneConfig
from .data import Example, ImageDataset, PKSampler, augmentations, collate, load_examples, source_of, split_by_artist
from .loop import DEFAULT_RUN, RunOptions, Trainer, batches, progress_bar, run_settings, seed_everything


def initial_encoder(config: FinetuneConfig, init: str | Path | None) -> StyleEncoder:
    """A fresh encoder, or one that starts from a stylesearch checkpoint: its trunk (e.g.
    SimCLR's), and its embedding layers too when they have this run's shape (a fine-tuned
    encoder, the bundled model's CNN), so training continues rather than restarts mu."""
    encoder = StyleEncoder(EncoderConfig(arch=config.arch, embed_dim=config.embed_dim, input_size=config.input_size,
                                         pooling=config.pooling))
    if init:
        state = {k: v.float() for k, v in read_checkpoint(init)["encoder"].items()}
        trunk = {k.removeprefix("trunk."): v for k, v in state.items() if k.startswith("trunk.")}
        try:
            encoder.trunk.load_state_dict(trunk)
        except RuntimeError as exc:
            raise StyleSearchError(f"--init {init}: its trunk does not match {config.arch}") from exc
        heads = {k: v.shape for k, v in encoder.state_dict().items() if not k.startswith("trunk.")}
        if all(k in state and state[k].shape == shape for k, shape in heads.items()):
            encoder.load_state_dict({k: state[k] for k in heads}, strict=False)
    return encoder


def embed_examples(encoder: StyleEncoder, examples: list[Example], labels: list[int], size: int, device, workers: int,
                   complement: StatisticsPart | None = None):
    """mu (beside the complement's statistics part, if any) of every readable example,
    inference-style (no augmentation), for validation/eval."""
    cfg = encoder.config
    data = ImageDataset([e.path for e in examples], labels, augmentations("none", size, cfg.mean, cfg.std), load_size=size)
    loader = torch.utils.data.DataLoader(data, batch_size=64, num_workers=workers, collate_fn=collate)
    mus, parts, kept = [], [], []
    encoder.eval()
    with torch.inference_mode():
        for batch in batches(loader):
            x, y = batch
            x = x.to(device, memory_format=torch.channels_last)
            mus.append(encoder.embed(x).float())
            if complement:
                parts.append(complement.statistics_part(x))
            kept.append(y.numpy())
        vectors = torch.cat(mus)
        if complement:  # mu centred on these images' mean, as the fitted map centres it on its own
            vectors = complement.combine(torch.cat(parts), vectors, vectors.mean(0))
    return vectors.cpu().numpy(), np.concatenate(kept)


def finetune(
    examples: list[Example],
    out: Path,
    config: FinetuneConfig,
    *,
    init: str | Path | None = None,
    run: RunOptions = DEFAULT_RUN,
) -> dict:
    """Train, validate every epoch on held-out artists, keep the best model at `out`."""
    config.check()
    terms = config.terms()
    seed_everything(config.seed)
    if config.validate:
        train, held = examples, load_examples(config.validate)
    else:
        train, held = split_by_artist(examples, config.held_out, config.seed)
    artists = sorted({e.artist for e in train})
    index = {a: i for i, a in enumerate(artists)}
    labels = [index[e.artist] for e in train]
    encoder = initial_encoder(config, init)
    complement = StatisticsPart(config.complement, encoder.config) if config.complement else None
    metric_dim = sum(complement.parts) if complement else config.embed_dim
    modules: dict[str, torch.nn.Module] = {"encoder": encoder}
    if terms & {"vae", "gmvae"}:
        modules["decoder"] = StyleDecoder(config.embed_dim, config.input_size)
    if "gmvae" in terms:
        modules["prior"] = losses.GaussianMixturePrior(config.embed_dim, len(artists))
    if "arc" in terms:
        modules["arcface"] = losses.ArcFace(metric_dim, len(artists), config.margin, config.arc_scale)
    trainer = Trainer(
        out, modules, lambda params: torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps), run,
        run_settings(config, complement=complement.model_id if complement else ""),
    )
    cfg = encoder.config
    if complement:
        complement.to(trainer.device)  # not a trained module: kept out of the optimiser and the saved state
    groups = {index[a]: source_of(a) for a in artists} if config.balance == "source" else None
    sampler = PKSampler(labels, config.p, config.k, config.seed, trainer.dist.rank, trainer.dist.world, groups,
                        config.epoch_steps)
    data = ImageDataset([e.path for e in train], labels,
                        augmentations(config.augment, config.input_size, cfg.mean, cfg.std, zoom=config.zoom),
                        load_size=round(config.input_size * (config.zoom if config.augment == "style" else 1)))
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=config.workers, collate_fn=collate,
                                         persistent_workers=config.workers > 0)
    summary = {"train_images": len(train), "train_artists": len(artists), "held_out_images": len(held),
               "held_out_artists": len({e.artist for e in held}), "artists_with_fewer_than_k": len(sampler.short)}
    if complement:
        summary["complement"] = complement.model_id
    trainer.log(event="start", config=asdict(config), **summary)
    history = []
    with progress_bar(run.progress and trainer.is_main, f"finetune {config.loss}") as bar:
        task = bar.add_task("train", total=len(sampler) * config.epochs, epoch=trainer.epoch, losses="", rate="-",
                            completed=len(sampler) * trainer.epoch)
        while trainer.epoch < config.epochs:
            sampler.set_epoch(trainer.epoch)
            trainer.train_mode(True)
            started, seen, steps, sums = time.monotonic(), 0, 0, {}
            for x, y in batches(loader):
                x, y = x.to(trainer.device, memory_format=torch.channels_last), y.to(trainer.device)
                with trainer.autocast():
                    parts = step_losses(trainer.wrapped, terms, x, y, config, complement)
                loss = sum(parts.values())
                trainer.backward(loss)
                seen, steps = seen + len(x), steps + 1
                values = {name: float(value.detach()) for name, value in parts.items()}
                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + value
                trainer.log(**{name: round(v, 5) for name, v in values.items()}, loss=round(sum(values.values()), 5))
                rate = seen / max(time.monotonic() - started, 1e-9)
                bar.update(task, advance=1, epoch=trainer.epoch + 1, rate=f"{rate:.1f}",
                           losses=" ".join(f"{n} {v:.3f}" for n, v in values.items()))
                trainer.maybe_save()
                if run.done(trainer.step):
                    break
            record = {"epoch": trainer.epoch + 1, **{n: round(s / max(steps, 1), 5) for n, s in sums.items()},
                      "skipped_images": len(data.failed)}
            if held and trainer.is_main:
                record |= validate(encoder, held, config, trainer.device, complement)
            trainer.epoch += 1
            history.append(record)
            trainer.log(event="epoch", **record)
            metric = record["mAP@R"] if "mAP@R" in record else trainer.epoch  # no held-out artists: keep the last
            if trainer.is_main and (trainer.best is None or metric >= trainer.best):
                trainer.best = metric
                # full precision: exactly the validated weights (models/recipe/ship.py makes the fp16 copy)
                save_encoder(out, encoder, name=config.name, version=config.version, trained=True, half=False,
                             data=summary | {"loss": config.loss, "epoch": trainer.epoch, "validation": record},
                             extra_state={f"decoder.{k}": v for k, v in modules["decoder"].state_dict().items()}
                             if "decoder" in modules else None)
            trainer.save_state()
            if run.done(trainer.step):
                break
    return {"summary": summary, "history": history, "skipped_images": sorted(data.failed), "short_artists": sampler.short}


def step_losses(m: dict, terms: set[str], x: torch.Tensor, y: torch.Tensor, config: FinetuneConfig,
                complement: StatisticsPart | None = None) -> dict[str, torch.Tensor]:
    """Every active loss term for one batch (weighted), keyed by name for logging. The
    metric losses see mu, or mu beside the complement's statistics part."""
    mu, logvar = m["encoder"](x)
    metric = complement(x, mu) if complement else mu.float()
    parts: dict[str, torch.Tensor] = {}
    if terms & {"vae", "gmvae"}:
        z = losses.reparameterise(mu, logvar)
        x_hat = m["decoder"](z)
        pixels = x[0].numel()
        parts["recon"] = config.vae_weight * losses.reconstruction(x.float(), x_hat.float()) / pixels
        kl = m["prior"].kl(mu, logvar, z) if "gmvae" in terms else losses.kl_standard_normal(mu, logvar)
        parts["kl"] = config.vae_weight * kl / pixels
    if "triplet" in terms:
        parts["triplet"], _ = losses.semihard_triplet(metric, y, config.margin)
    if "supcon" in terms:
        parts["supcon"] = losses.supervised_contrastive(metric, y, config.temperature)
    if "arc" in terms:
        parts["arc"] = m["arcface"](metric, y)
    return parts


def validate(encoder: StyleEncoder, held: list[Example], config: FinetuneConfig, device,
             complement: StatisticsPart | None = None) -> dict:
    artists = sorted({e.artist for e in held})
    labels = [artists.index(e.artist) for e in held]
    vectors, kept = embed_examples(encoder, held, labels, config.input_size, device, config.workers, complement)
    scores = score(vectors, kept, seed=config.seed, restarts=3)
    return {"NMI": scores["NMI"], "mAP@R": scores["mAP@R"]}
