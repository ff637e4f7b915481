"""``train(config)``: data, model, optimizer, the epoch loop, checkpoints, logs, resume."""

from __future__ import annotations

import copy
import json
import random
import signal
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, DistributedSampler

from . import distributed
from .checkpoint import (CheckpointError, build_model, load_initial_weights, load_state_into, read_checkpoint,
                         rng_state, save_checkpoint, set_rng_state)
from .config import TrainConfig
from .loop import TrainingDiverged, cosine_with_warmup, evaluate, parameter_groups, train_epoch
from .monitor import count_spikes, mean_spikes_per_neuron


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: PyTorch sees no CUDA device here; use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def data_shape(dataset) -> tuple[int, int | None, int]:
    """``(in_channels, T or None, num_classes)`` read off a data set and its first sample."""
    sample = dataset[0][0]
    num_classes = getattr(dataset, "num_classes", None)
    if num_classes is None and hasattr(dataset, "classes"):
        num_classes = len(dataset.classes)
    if num_classes is None:
        raise ValueError(f"{type(dataset).__name__} does not say its number of classes (num_classes)")
    if sample.ndim == 4:  # [T, C, H, W] event frames
        return sample.shape[1], sample.shape[0], int(num_classes)
    return sample.shape[0], None, int(num_classes)


def make_loaders(cfg: TrainConfig, dist_info) -> tuple[DataLoader, DataLoader, dict[str, Any]]:
    from ..data import make_dataset

    kwargs = dict(root=cfg.data_dir, T=cfg.T, download=cfg.download, **cfg.dataset_kwargs)
    train_set = make_dataset(cfg.dataset, train=True, **kwargs)
    # Augmentation is for training only: the test split never gets it, whatever was asked.
    test_set = make_dataset(cfg.dataset, train=False, **{k: v for k, v in kwargs.items() if k != "augment"})
    in_channels, data_T, num_classes = data_shape(train_set)
    # One sampler for one process and for many: the permutation comes from (seed, epoch) alone, so a
    # resumed run sees the same order, and N processes see together what one process would.
    sampler = DistributedSampler(train_set, dist_info.world_size, dist_info.rank, shuffle=True, seed=cfg.seed)
    test_sampler = (DistributedSampler(test_set, dist_info.world_size, dist_info.rank, shuffle=False)
                    if dist_info.enabled else None)
    per_rank = cfg.batch_size // dist_info.world_size
    if per_rank < 1 or cfg.batch_size % dist_info.world_size:
        raise ValueError(f"--batch-size {cfg.batch_size} is the global batch: it must be a multiple of "
                         f"the {dist_info.world_size} processes")
    train_loader = DataLoader(train_set, per_rank, sampler=sampler, num_workers=cfg.workers, drop_last=True)
    test_loader = DataLoader(test_set, per_rank, sampler=test_sampler, num_workers=cfg.workers)
    T = data_T if data_T is not None else (cfg.T or 4)
    return train_loader, test_loader, {"in_channels": in_channels, "T": T, "num_classes": num_classes}


class RunLog:
    """Rank 0's logs: ``log.jsonl`` always, TensorBoard when installed."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled = enabled
        self.path = out / "log.jsonl"
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.tb.add_scalar(key, value, record["epoch"])
            self.tb.flush()


@contextmanager
def interrupt_guard():
    """Turn SIGTERM into KeyboardInterrupt so that a killed run also saves ``last.pt``."""
    previous = signal.getsignal(signal.SIGTERM)

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _resume_state(cfg: TrainConfig, explicit: set[str]) -> tuple[dict | None, TrainConfig]:
    """Read and check ``--resume`` before anything is written; the checkpoint's model wins."""
    if cfg.resume is None:
        return None, cfg
    state = read_checkpoint(cfg.resume)
    saved = state.get("config") or {}
    arch = state["model_args"]["arch"]
    if "arch" in explicit and cfg.arch != arch:
        raise CheckpointError(
            f"--resume {cfg.resume} holds a {arch} checkpoint but --arch {cfg.arch} was given; "
            "drop --arch or resume from a checkpoint of that architecture"
        )
    if "optimizer" not in state:
        raise CheckpointError(f"{cfg.resume} holds weights only (no optimizer state): it cannot be resumed")
    keep = {k: v for k, v in saved.items() if k not in explicit and k != "resume"}
    return state, replace(cfg, **keep)


def _initial_state(cfg: TrainConfig, explicit: set[str]) -> tuple[dict | None, TrainConfig]:
    """Read ``--init-from``: the model (architecture and arguments) is the checkpoint's, the head new."""
    if cfg.init_from is None:
        return None, cfg
    state = read_checkpoint(cfg.init_from)
    arch = state["model_args"]["arch"]
    if "arch" in explicit and cfg.arch != arch:
        raise CheckpointError(f"--init-from {cfg.init_from} holds a {arch} but --arch {cfg.arch} was given; "
                              "drop --arch (the architecture comes from the checkpoint)")
    kwargs = {**state["model_args"].get("kwargs", {}), **cfg.model_kwargs}
    return state, replace(cfg, arch=arch, model_kwargs=kwargs)


def train(cfg: TrainConfig, explicit: set[str] | None = None, console=None) -> dict[str, Any]:
    """Train per ``cfg``; returns the final metrics. ``explicit``: options the user set by hand."""
    from rich.console import Console

    console = console or Console()
    state, cfg = _resume_state(cfg, explicit or set())
    init, cfg = (None, cfg) if state else _initial_state(cfg, explicit or set())
    device = resolve_device(cfg.device)
    dist_info = distributed.setup(device)
    if device.type == "cuda" and dist_info.enabled:
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    seed_everything(cfg.seed + dist_info.rank)
    out = Path(cfg.out)

    train_loader, test_loader, shape = make_loaders(cfg, dist_info)
    model_args = state["model_args"] if state else {"arch": cfg.arch, **shape, "kwargs": dict(cfg.model_kwargs)}
    model = build_model(model_args).to(device)
    if state:
        load_state_into(model, state["model"], cfg.resume, model_args["arch"])
    elif init:
        fresh = load_initial_weights(model, init["model"], cfg.init_from, model_args["arch"])
        if dist_info.is_main:
            console.print(f"initialised from {cfg.init_from}" + (f"; new: {', '.join(fresh)}" if fresh else ""),
                          markup=False)
    if dist_info.enabled:
        if cfg.sync_bn and device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net = torch.compile(model, dynamic=False) if cfg.compile else model
    bare = model.module if dist_info.enabled else model

    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(parameter_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=False)
    elif cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr)
    else:
        raise ValueError(f"--optimizer {cfg.optimizer!r}: expected 'sgd' or 'adamw'")
    steps = len(train_loader) if cfg.max_steps_per_epoch is None else min(len(train_loader), cfg.max_steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(cfg.epochs * steps, int(cfg.warmup_epochs * steps)))
    scaler = torch.amp.GradScaler("cuda") if cfg.amp and cfg.amp_dtype == "fp16" and device.type == "cuda" else None
    start_epoch, best = 0, {"top1": -1.0}
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = state["epoch"]
        best = state.get("best", best)
        set_rng_state(state["rng"])

    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log = RunLog(out, dist_info.is_main)

    saved_at_step = [scheduler.last_epoch]  # optimizer steps taken when last.pt was last written

    def checkpoint(epoch: int, metrics: dict[str, Any], name: str = "last.pt") -> None:
        saved_at_step[0] = scheduler.last_epoch
        if dist_info.is_main:
            save_checkpoint(out / name, {
                "model": bare.state_dict(), "model_args": model_args, "config": cfg.to_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {}, "epoch": epoch,
                "rng": rng_state(), "metrics": metrics, "best": best,
            })

    metrics: dict[str, Any] = {}
    epoch, summary = start_epoch, None
    with count_spikes(bare) as counter, interrupt_guard(), _progress(console, dist_info.is_main) as progress:
        try:
            for epoch in range(start_epoch, cfg.epochs):
                sampler = train_loader.sampler
                sampler.set_epoch(epoch)
                task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=steps, stats="")

                def show(loss, acc, ips, rate, task=task):
                    progress.update(task, advance=1, stats=f"loss {loss:.3f} acc {acc:.3f} {ips:.0f} img/s rate {rate:.3f}")

                stats = train_epoch(net, train_loader, optimizer, scheduler, scaler, device, cfg, dist_info, counter, show)
                spikes_per_neuron = mean_spikes_per_neuron(counter)
                summary = copy.deepcopy(counter)  # the training batches' counts, before evaluation
                test = evaluate(net, test_loader, device, cfg.amp, cfg.amp_dtype, dist_info)
                metrics = {"epoch": epoch + 1, "train_loss": stats.loss, "train_top1": stats.top1,
                           "test_loss": test.loss, "test_top1": test.top1, "test_top5": test.top5,
                           "images_per_s": stats.images_per_s, "firing_rate": stats.firing_rate,
                           "spikes_per_neuron": spikes_per_neuron, "lr": scheduler.get_last_lr()[0]}
                log.write(metrics)
                if dist_info.is_main:
                    console.print(f"epoch {epoch + 1}: train loss {stats.loss:.4f} acc {stats.top1:.3f} | "
                                  f"test loss {test.loss:.4f} top1 {test.top1:.3f} | "
                                  f"{spikes_per_neuron:.3f} spikes/neuron/sample")
                is_best = test.top1 > best["top1"]
                if is_best:
                    best = {"top1": test.top1, "epoch": epoch + 1}
                checkpoint(epoch + 1, metrics)
                if is_best and dist_info.is_main:
                    save_checkpoint(out / "best.pt", read_checkpoint(out / "last.pt"))
        except KeyboardInterrupt:
            if scheduler.last_epoch != saved_at_step[0]:
                # Interrupted mid-epoch: save the weights so far; a resume redoes this epoch from them.
                checkpoint(epoch, metrics)
            console.print(f"interrupted: {out / 'last.pt'} holds the last state; continue with "
                          f"--resume {out / 'last.pt'}")
            distributed.teardown(dist_info)
            raise
        except TrainingDiverged as error:
            distributed.teardown(dist_info)
            raise TrainingDiverged(f"{error}; the last good checkpoint is {out / 'last.pt'}") from None
        except torch.cuda.OutOfMemoryError:
            distributed.teardown(dist_info)
            raise RuntimeError(
                "CUDA out of memory: lower --batch-size or --T, or add --amp") from None
    if dist_info.enabled:
        in_sync = distributed.parameters_in_sync(bare, dist_info)
        log.write({"epoch": epoch + 1, "ranks_in_sync": in_sync, "world_size": dist_info.world_size})
        if not in_sync:
            raise RuntimeError("DDP ranks ended with different weights: please report this")
    if dist_info.is_main and summary is not None:
        _print_spike_summary(console, summary)
    distributed.teardown(dist_info)
    return metrics


@contextmanager
def _progress(console, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[stats]}"), console=console,
                        disable=not enabled, transient=False)
    with progress:
        yield progress


def _print_spike_summary(console, counter) -> None:
    from rich.table import Table

    if not counter.neurons:
        return
    table = Table("neuron layer", "neurons", "spikes / neuron / sample", "firing rate / step",
                  title="spikes per neuron (last epoch's training batches)")
    for name in counter.neurons:
        rate = counter.spikes[name] / max(counter.neuron_steps[name], 1)
        table.add_row(name, str(counter.neurons[name]), f"{counter.spikes_per_neuron(name):.3f}", f"{rate:.4f}")
    console.print(table)
    console.print(f"mean: {mean_spikes_per_neuron(counter):.3f} spikes per neuron per sample")
