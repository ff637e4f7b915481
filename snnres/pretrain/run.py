"""``pretrain(config)``: masked image pre-training with the training runner's pieces.

The run folder is ``snnres train``'s: ``config.yaml``, ``log.jsonl`` (one record per epoch),
TensorBoard scalars and an atomically written ``last.pt``. ``last.pt`` holds the encoder as the
classifier's own state dict (``model``, with ``model_args``), so ``snnres train --init-from`` and
``snnres.load_checkpoint`` read it like any checkpoint; the decoders and the pre-training options
are under ``pretrain``.

Resume is exact at any step: Ctrl-C or SIGTERM finishes the step in flight, saves the position
(epoch, step), and a resumed run replays the same batches (the training runner's resumable order,
from the seed and the epoch), the same masks (drawn from a generator seeded by the seed and the
global step) and the same global random state.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..train.checkpoint import (CheckpointError, build_model, load_state_into, read_checkpoint, rng_state,
                                save_checkpoint, set_rng_state)
from ..train.distributed import DistInfo
from ..train.loop import TrainingDiverged, cosine_with_warmup, parameter_groups
from ..train.data import make_loaders
from ..train.rundir import RunFolder
from ..train.run import progress_bar, resolve_device, seed_everything
from ..train.stop import Stopped, stop_requests
from .config import PretrainConfig
from .losses import masked_mse
from .model import MaskedImageModel, MaskedModelingOptions, check_vit_arch


def mask_generator(seed: int, index: int) -> torch.Generator:
    """The masks of one batch: a generator seeded by (run seed, batch index) alone, so resume redraws them."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))


VALIDATION = 2**31  # validation batch b draws its masks from (seed, VALIDATION + b): the same every epoch


def image_size(dataset) -> int | tuple[int, int]:
    h, w = dataset[0][0].shape[-2:]
    return int(h) if h == w else (int(h), int(w))


def _heads(model: MaskedImageModel) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}


@torch.no_grad()
def validate(model: MaskedImageModel, loader, device, seed: int) -> tuple[float, list[float], list[float]]:
    """Over ``loader``, with the same masks at every call: the loss, its terms (MIRL: one per pair) and
    each decoder's loss alone (its prediction against the whole target)."""
    model.eval()
    loss_sum, terms_sum, alone_sum, seen = 0.0, 0.0, 0.0, 0
    for b, (images, _) in enumerate(loader):
        out = model(images.to(device), mask_generator(seed, VALIDATION + b))
        n = out.mask.shape[0]
        loss_sum += out.loss.item() * n
        terms_sum = terms_sum + out.terms * n
        alone_sum = alone_sum + torch.stack([masked_mse(p, out.target, out.mask) for p in out.preds]) * n
        seen += n
    if not seen:
        raise ValueError("the validation split yielded no images")
    return loss_sum / seen, (terms_sum / seen).tolist(), (alone_sum / seen).tolist()


def load_pretrainer(state: dict, source: str = "the checkpoint") -> MaskedImageModel:
    """The pre-training model (encoder and decoders) of a ``snnres pretrain`` checkpoint, weights loaded."""
    model_args = state["model_args"]
    model = MaskedImageModel(build_model(model_args), MaskedModelingOptions(**state["pretrain"]["options"]),
                             model_args["arch"])
    saved = {**{f"encoder.{k}": v for k, v in state["model"].items()}, **state["pretrain"]["heads"]}
    load_state_into(model, saved, source, model_args["arch"])
    return model


def _resume_state(cfg: PretrainConfig, explicit: set[str]) -> tuple[dict | None, PretrainConfig]:
    """Read and check ``--resume`` before anything is written; the checkpoint's model and options win."""
    if cfg.resume is None:
        return None, cfg
    state = read_checkpoint(cfg.resume)
    if "pretrain" not in state:
        raise CheckpointError(f"{cfg.resume} was written by snnres train, not snnres pretrain: resume it with "
                              f"snnres train --resume, or fine-tune from it with snnres train --init-from")
    arch = state["model_args"]["arch"]
    if "arch" in explicit and cfg.arch != arch:
        raise CheckpointError(f"--resume {cfg.resume} holds a {arch} checkpoint but --arch {cfg.arch} was given; "
                              f"drop --arch or resume from a checkpoint of that architecture")
    keep = {k: v for k, v in (state.get("config") or {}).items() if k not in explicit and k != "resume"}
    return state, replace(cfg, **keep)


def pretrain(cfg: PretrainConfig, explicit: set[str] | None = None, console=None) -> dict[str, Any]:
    """Pre-train per ``cfg``; returns the last epoch's metrics. ``explicit``: options set by hand."""
    from rich.console import Console

    console = console or Console()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("snnres pretrain runs in one process; start it without torchrun")
    state, cfg = _resume_state(cfg, explicit or set())
    options = MaskedModelingOptions(**state["pretrain"]["options"]) if state else cfg.options()
    check_vit_arch(state["model_args"]["arch"] if state else cfg.arch)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    out = Path(cfg.out)

    data = make_loaders(cfg, DistInfo())
    train_loader, val_loader, shape = data.train, data.test, data.shape
    kwargs = {"img_size": image_size(train_loader.dataset), **cfg.model_kwargs}
    model_args = state["model_args"] if state else {"arch": cfg.arch, **shape, "kwargs": kwargs}
    model = (load_pretrainer(state, cfg.resume) if state else
             MaskedImageModel(build_model(model_args), options, model_args["arch"])).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    steps = len(train_loader) if cfg.max_steps_per_epoch is None else min(len(train_loader), cfg.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(f"--batch-size {cfg.batch_size} is larger than the {len(train_loader.dataset)} training "
                         f"images: no full batch to train on")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(cfg.epochs * steps, int(cfg.warmup_epochs * steps)))
    start_epoch, start_step = 0, 0
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, start_step = state["epoch"], state.get("step", 0)

    log = RunFolder(out)
    log.prepare(cfg.to_dict(), state)  # config.yaml; log.jsonl cut to the checkpoint's epochs
    names = model.term_names()
    metrics: dict[str, Any] = dict(state.get("metrics") or {}) if state else {}

    def checkpoint(epoch: int, step: int, partial: dict | None = None) -> None:
        save_checkpoint(out / "last.pt", {
            "partial_epoch": partial,  # the interrupted epoch's running sums, for its log record
            "model": model.encoder.state_dict(), "model_args": model_args,
            "pretrain": {"method": options.method, "options": options.to_dict(), "heads": _heads(model)},
            "config": cfg.to_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch, "step": step, "rng": rng_state(), "metrics": metrics,
        })

    params = [p for p in model.parameters() if p.requires_grad]
    console.print(f"{options.method.upper()} pre-training of {model_args['arch']} ({len(model.vit.blocks)} blocks, "
                  f"{model.segments} segment(s), {sum(p.numel() for p in params) / 1e6:.2f}M trainable) on "
                  f"{cfg.dataset}: {steps} steps per epoch", markup=False)
    with stop_requests() as requested, progress_bar(console, True) as progress:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            resuming = state is not None and epoch == start_epoch
            first = start_step if resuming else 0
            data.start_epoch(epoch, first)  # the epoch's order from its first step not yet trained on
            if resuming:
                set_rng_state(state["rng"])  # the loaders draw from their own generators, not this state
            batches = iter(train_loader)
            task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=steps, completed=first, stats="")
            partial = state.get("partial_epoch") if resuming and first > 0 else None
            loss_sum, seen = (partial["loss_sum"], partial["seen"]) if partial else (0.0, 0)
            terms_sum = torch.tensor(partial["terms_sum"]) if partial else 0.0
            start = time.perf_counter()
            for step in range(first, steps):
                images = next(batches)[0].to(device, non_blocking=True)
                result = model(images, mask_generator(cfg.seed, epoch * steps + step))
                grad_norm = None
                if torch.isfinite(result.loss):
                    optimizer.zero_grad(set_to_none=True)
                    result.loss.backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
                if grad_norm is None or not torch.isfinite(grad_norm):
                    what = "loss" if grad_norm is None else "gradient norm"
                    raise TrainingDiverged(
                        f"the {what} became non-finite at epoch {epoch + 1}, step {step + 1}; no weight was "
                        f"updated. Lower --lr" + (f"; the last good checkpoint is {out / 'last.pt'}"
                                                  if (out / "last.pt").exists() else ""))
                optimizer.step()
                scheduler.step()
                n = result.mask.shape[0]
                loss_sum += result.loss.item() * n
                terms_sum = terms_sum + result.terms * n
                seen += n
                progress.update(task, advance=1, stats=f"loss {loss_sum / seen:.4f} "
                                f"{seen / (time.perf_counter() - start):.0f} img/s")
                if requested and step + 1 < steps:
                    checkpoint(epoch, step + 1, {"loss_sum": loss_sum, "seen": seen, "terms_sum": terms_sum.tolist()})
                    raise Stopped(f"stopped by {requested.signal_name} at epoch {epoch + 1}, step {step + 1}: "
                                  f"{out / 'last.pt'} holds it; continue with --resume {out / 'last.pt'}")
            val_loss, val_terms, val_alone = validate(model, val_loader, device, cfg.seed)
            train_terms = (terms_sum / seen).tolist() if seen else []
            metrics = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "val_loss": val_loss,
                       "lr": scheduler.get_last_lr()[0],
                       "images_per_s": seen / max(time.perf_counter() - start, 1e-9)}
            if options.method == "mirl":
                metrics.update({f"train_{k}": v for k, v in zip(names, train_terms)})
                metrics.update({f"val_{k}": v for k, v in zip(names, val_terms)})
                metrics.update({f"val_seg{k + 1}_alone": v for k, v in enumerate(val_alone)})
            log.write_log(metrics)
            checkpoint(epoch + 1, 0)
            console.print(f"epoch {epoch + 1}: train loss {metrics['train_loss']:.4f} | val loss {val_loss:.4f}"
                          + ("".join(f" | {k} {v:.4f}" for k, v in zip(names, val_terms)) if options.method == "mirl" else ""),
                          markup=False)
            if requested:
                raise Stopped(f"stopped by {requested.signal_name} after epoch {epoch + 1}: continue with "
                              f"--resume {out / 'last.pt'}")
    return metrics
