"""``train(config)``: data, model, optimizer, the epoch loop, checkpoints, logs, exact resume.

A checkpoint is a position (``epoch`` epochs done, then ``step`` steps of the next) plus every
state the following steps read: weights, optimizer, schedule, grad scaler, the random states of
every process, the epoch's running sums. The data order and augmentation are functions of
``(seed, epoch, position)`` (``sampler.py``), so a run resumed from any checkpoint, whether it
was written at an epoch's end, by ``--save-every``, on Ctrl-C / SIGTERM between two steps or
during an evaluation, ends with the same weights, bit for bit, as an uninterrupted run.
"""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..layers import set_memory, sync_batchnorm
from . import distributed
from .checkpoint import (MODEL_ARGS_FORMAT, CheckpointError, build_model, load_initial_weights, load_state_into,
                         read_checkpoint, rng_state, set_rng_state)
from .config import TrainConfig
from .data import check_names, make_loaders
from .loop import (EpochProgress, Optimization, TrainingDiverged, epoch_stats, evaluate, lr_schedule,
                   parameter_groups, train_epoch)
from .monitor import count_spikes, mean_spikes_per_neuron, print_spike_summary
from .rundir import RunFolder, describe_position
from .sampler import sample_seeds
from .stop import Stopped, sigterm_as_interrupt, stop_requests


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


def resume_state(cfg: TrainConfig, explicit: set[str]) -> tuple[dict | None, TrainConfig]:
    """Read and check ``--resume`` before anything is written. The checkpoint's options win over
    defaults, explicit options over the checkpoint; without ``--out`` the run continues in the
    checkpoint's own folder."""
    if cfg.resume is None:
        return None, cfg
    state = read_checkpoint(cfg.resume)
    saved = state.get("config") or {}
    arch = state["model_args"].get("arch")
    if "arch" in explicit and cfg.arch != arch:
        raise CheckpointError(
            f"--resume {cfg.resume} holds a {arch} checkpoint but --arch {cfg.arch} was given; "
            "drop --arch or resume from a checkpoint of that architecture"
        )
    if "optimizer" not in state:
        raise CheckpointError(f"{cfg.resume} holds weights only (no optimizer state): it cannot be resumed; "
                              "resume from the run's last.pt")
    keep = {k: v for k, v in saved.items() if k not in explicit and k in cfg.to_dict() and k != "resume"}
    cfg = replace(cfg, **keep)
    if "out" not in explicit:
        cfg = replace(cfg, out=str(Path(cfg.resume).parent))
    return state, cfg


def initial_state(cfg: TrainConfig, explicit: set[str]) -> tuple[dict | None, TrainConfig]:
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
    with sigterm_as_interrupt():
        state, cfg = resume_state(cfg, set(explicit or ()))
        init, cfg = (None, cfg) if state else initial_state(cfg, set(explicit or ()))
        if state is not None and state["epoch"] >= cfg.epochs:
            console.print(f"{cfg.resume} is a finished run ({describe_position(state)}): nothing to do. "
                          f"To train longer, pass --epochs N with N > {state['epoch']}.", markup=False)
            return state.get("metrics") or {}
        check_names(cfg, state["model_args"] if state else None)
        try:
            run = _Run(cfg, state, console, init)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(
                f"interrupted before the first training step: nothing new was saved; {cfg.resume} is unchanged"
                if state else "interrupted before the first training step: nothing was saved") from None
        try:
            return run.loop()
        finally:
            run.close()


class _StopHere(Exception):
    """Raised inside the loop when a stop was requested: the position is saved, then ``Stopped``."""


class _Run:
    """One process's training: built from a config and an optional resumed state."""

    def __init__(self, cfg: TrainConfig, state: dict | None, console, init: dict | None = None):
        self.cfg, self.console = cfg, console
        self.device = resolve_device(cfg.device)
        self.dist = distributed.setup(self.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.folder = RunFolder(cfg.out, self.dist.is_main)
        if state is None:
            self.folder.check_fresh()
        seed_everything(cfg.seed + self.dist.rank)
        self.data = make_loaders(cfg, self.dist)
        self.model_args = state["model_args"] if state else {"arch": cfg.arch, **self.data.shape,
                                                             "kwargs": dict(cfg.model_kwargs), "format": MODEL_ARGS_FORMAT}
        model = set_memory(build_model(self.model_args), cfg.memory).to(self.device)
        if state:
            load_state_into(model, state["model"], cfg.resume, self.model_args["arch"])
        elif init:
            fresh = load_initial_weights(model, init["model"], cfg.init_from, self.model_args["arch"])
            if self.dist.is_main:
                console.print(f"initialised from {cfg.init_from}" + (f"; new: {', '.join(fresh)}" if fresh else ""),
                              markup=False)
        self.bare = model
        if self.dist.enabled:
            if cfg.sync_bn and self.device.type == "cuda":
                model = sync_batchnorm(model)
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            self.bare = model.module
        self.net = torch.compile(model, dynamic=False) if cfg.compile else model
        self._build_optimization(model)
        self.epoch, self.progress, self.best, self.metrics = 0, EpochProgress(), {"top1": -1.0}, {}
        if state:
            self._restore(state)
        self.saved_at = (self.epoch, self.progress.step) if state else None
        self.saved_file = Path(cfg.resume) if state else None  # where the newest saved state is
        removed = self.folder.prepare(cfg.to_dict(), state)
        if self.dist.is_main:
            if removed:
                console.print(f"removed {len(removed)} temporary file(s) of killed writes from {self.folder.out}")
            if state:
                where = describe_position({**state, "config": cfg.to_dict()})
                console.print(f"resuming {cfg.resume} ({where}) into {self.folder.out}", markup=False)

    def _build_optimization(self, model) -> None:
        cfg = self.cfg
        if cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(parameter_groups(model, cfg.weight_decay, cfg.weight_decay_on), lr=cfg.lr,
                                        momentum=cfg.momentum, nesterov=False)
        elif cfg.optimizer == "adamw":
            optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay, cfg.weight_decay_on), lr=cfg.lr)
        else:
            raise ValueError(f"--optimizer {cfg.optimizer!r}: expected 'sgd' or 'adamw'")
        n = len(self.data.train)
        self.steps = n if cfg.max_steps_per_epoch is None else min(n, cfg.max_steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(
            cfg.lr_schedule, cfg.epochs, self.steps, int(cfg.warmup_epochs * self.steps), cfg.lr_step_epochs,
            cfg.lr_step_gamma, cfg.lr_epoch_offset))
        use_scaler = cfg.amp and cfg.amp_dtype == "fp16" and self.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self.opt = Optimization(optimizer, scheduler, scaler, self.device, self.dist, cfg.amp, cfg.amp_dtype,
                                cfg.label_smoothing, cfg.on_nonfinite)

    def _restore(self, state: dict) -> None:
        opt = self.opt
        opt.optimizer.load_state_dict(state["optimizer"])
        opt.scheduler.load_state_dict(state["scheduler"])
        if opt.scaler is not None and state.get("scaler"):
            opt.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best, self.metrics = state["epoch"], state.get("best", self.best), state.get("metrics") or {}
        if state.get("step"):
            if state.get("steps_per_epoch") != self.steps:
                raise CheckpointError(
                    f"{self.cfg.resume} was saved at step {state['step']} of an epoch of {state.get('steps_per_epoch')} "
                    f"steps; this run's epochs have {self.steps} (another --batch-size, data set or "
                    "--max-steps-per-epoch): resume with the same options")
            self.progress = EpochProgress.from_state(state.get("progress"))
            if not self.dist.is_main:  # the running sums were summed over processes into rank 0's copy
                self.progress = EpochProgress(step=self.progress.step)
        ranks = state.get("rng_ranks") or [state["rng"]]
        if len(ranks) == self.dist.world_size:
            set_rng_state(ranks[self.dist.rank])
        elif self.dist.is_main:
            set_rng_state(state["rng"])
            self.console.print(f"note: {self.cfg.resume} was saved by {len(ranks)} processes, this run has "
                               f"{self.dist.world_size}: the other processes' random states start afresh")

    def snapshot(self, epoch_done: int) -> dict[str, Any]:
        """The full state at the current position (every process calls it: it gathers)."""
        progress = None
        if self.progress.step:
            progress = self.progress.state_dict()
            sums = distributed.all_reduce_sum([self.progress.loss_sum, self.progress.correct, self.progress.seen],
                                              self.dist, self.device)
            progress.update(loss_sum=sums[0], correct=sums[1], seen=sums[2])
        opt = self.opt
        return {
            "model": self.bare.state_dict(), "model_args": self.model_args, "config": self.cfg.to_dict(),
            "optimizer": opt.optimizer.state_dict(), "scheduler": opt.scheduler.state_dict(),
            "scaler": opt.scaler.state_dict() if opt.scaler is not None else {},
            "epoch": epoch_done, "step": self.progress.step, "steps_per_epoch": self.steps, "progress": progress,
            "rng": rng_state(), "rng_ranks": distributed.gather_objects(rng_state(), self.dist),
            "metrics": self.metrics, "best": self.best, "data": self.data.record,
        }

    def save(self, new_best: bool = False) -> None:
        state = self.snapshot(self.epoch)
        self.folder.save(state, new_best)
        self.saved_at = (self.epoch, self.progress.step)
        self.saved_file = self.folder.last

    def loop(self) -> dict[str, Any]:
        cfg, console = self.cfg, self.console
        summary = None
        with count_spikes(self.bare) as counter, stop_requests() as stop, \
                progress_bar(console, self.dist.is_main) as bar:
            try:
                while self.epoch < cfg.epochs:
                    summary = self._epoch(counter, stop, bar)
            except _StopHere:
                if (self.epoch, self.progress.step) != self.saved_at:
                    self.save()
                self._teardown()
                where = describe_position({"epoch": self.epoch, "step": self.progress.step,
                                           "steps_per_epoch": self.steps, "config": cfg.to_dict()})
                raise Stopped(f"stopped on {stop.signal_name or 'request'}: {self.folder.last} holds the state "
                              f"({where}); continue exactly with --resume {self.folder.last}") from None
            except TrainingDiverged as error:
                self.progress.spikes = counter.state_dict()
                self.save()  # the state before the failed step: nothing non-finite was applied
                self._teardown()
                raise TrainingDiverged(
                    f"{error}. {self.folder.last} holds the state before that step: resume with --resume "
                    f"{self.folder.last} and a lower --lr (or --amp-dtype bf16), or add --on-nonfinite skip "
                    "to skip such steps") from None
            except KeyboardInterrupt:
                self._teardown()
                raise KeyboardInterrupt(self._interrupted_message()) from None
            except torch.cuda.OutOfMemoryError:
                self._teardown()
                raise RuntimeError("CUDA out of memory: lower --batch-size or --T, or add --amp") from None
        if self.dist.enabled:
            in_sync = distributed.parameters_in_sync(self.bare, self.dist)
            self.folder.write_log({"epoch": self.epoch, "ranks_in_sync": in_sync, "world_size": self.dist.world_size})
            if not in_sync:
                raise RuntimeError("DDP ranks ended with different weights: please report this")
        if self.dist.is_main and summary is not None:
            print_spike_summary(console, summary, cfg.spike_table)
        self._teardown()
        return self.metrics

    def _epoch(self, counter, stop, bar):
        cfg, epoch = self.cfg, self.epoch
        self.data.start_epoch(epoch, self.progress.step)
        task = bar.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=self.steps, completed=self.progress.step,
                            stats="")

        def show(stats, note, task=task):
            if note is not None:
                bar.console.print(note, markup=False)
            else:
                loss, acc, ips, rate = stats
                bar.update(task, completed=self.progress.step,
                           stats=f"loss {loss:.3f} acc {acc:.3f} {ips:.0f} img/s rate {rate:.3f}")

        def save_every(counter=counter):
            if cfg.save_every and self.progress.step % cfg.save_every == 0:
                self.progress.spikes = counter.state_dict()
                self.save()

        if not train_epoch(self.net, self.data.train, self.steps, self.opt, counter, self.progress, epoch, stop, show,
                           save_every):
            self.progress.spikes = counter.state_dict()
            raise _StopHere
        self.progress.spikes = counter.state_dict()
        summary = copy.deepcopy(counter)  # the training batches' counts, before evaluation adds its own
        stats = epoch_stats(self.progress, summary, self.dist, self.device)
        test = evaluate(self.net, self.data.test, self.device, cfg.amp, cfg.amp_dtype, self.dist, stop=stop)
        if test is None:
            raise _StopHere
        spikes_per_neuron = mean_spikes_per_neuron(summary)
        self.metrics = {"epoch": epoch + 1, "train_loss": stats.loss, "train_top1": stats.top1,
                        "test_loss": test.loss, "test_top1": test.top1, "test_top5": test.top5,
                        "images_per_s": stats.images_per_s, "firing_rate": stats.firing_rate,
                        "spikes_per_neuron": spikes_per_neuron, "lr": self.opt.scheduler.get_last_lr()[0],
                        "skipped_steps": self.progress.skipped}
        self.folder.write_log(self.metrics)
        if self.dist.is_main:
            skipped = f" | {self.progress.skipped} steps skipped (non-finite)" if self.progress.skipped else ""
            self.console.print(f"epoch {epoch + 1}: train loss {stats.loss:.4f} acc {stats.top1:.3f} | "
                               f"test loss {test.loss:.4f} top1 {test.top1:.3f} | "
                               f"{spikes_per_neuron:.3f} spikes/neuron/sample{skipped}", markup=False)
        new_best = test.top1 > self.best["top1"]
        if new_best:
            self.best = {"top1": test.top1, "epoch": epoch + 1}
        self.epoch, self.progress = epoch + 1, EpochProgress()
        self.save(new_best)
        return summary

    def _interrupted_message(self) -> str:
        if self.saved_file is None:
            return "interrupted before the first checkpoint: nothing was saved; run the same command to start again"
        return f"interrupted: {self.saved_file} holds the last saved state; continue with --resume {self.saved_file}"

    def _teardown(self) -> None:
        distributed.teardown(self.dist)

    def close(self) -> None:
        self.folder.close()


def progress_bar(console, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[stats]}"), console=console, disable=not enabled, transient=False)
