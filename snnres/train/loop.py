"""One training epoch and one evaluation pass: small functions the runner calls."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import DistInfo, all_reduce_sum
from .monitor import SpikeCounter


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN or infinite (no weight was updated by that step)."""


@dataclass
class EpochProgress:
    """Where an epoch stands: steps done, running sums, whether its training part is done.

    A mid-epoch checkpoint stores it (``state_dict``) so that a resumed epoch ends with the same
    numbers as an uninterrupted one.
    """

    step: int = 0
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: float = 0.0
    skipped: int = 0
    spikes: dict = field(default_factory=dict)  # SpikeCounter.state_dict() of the epoch's batches
    seconds: float = 0.0

    def state_dict(self) -> dict:
        return dict(step=self.step, loss_sum=self.loss_sum, correct=self.correct, seen=self.seen,
                    skipped=self.skipped, spikes=self.spikes, seconds=self.seconds)

    @classmethod
    def from_state(cls, state: dict | None) -> "EpochProgress":
        return cls(**(state or {}))


@dataclass
class EpochStats:
    loss: float
    top1: float
    samples: int
    seconds: float
    firing_rate: float
    top5: float | None = None

    @property
    def images_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def autocast(device: torch.device, amp: bool, amp_dtype: str):
    if not amp or device.type != "cuda":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp_dtype == "bf16" else torch.float16)


def cosine_with_warmup(total_steps: int, warmup_steps: int):
    """LR factor per optimizer step: linear warm-up, then cosine decay to 0."""
    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


LR_SCHEDULES = ("cosine", "cosine-epoch", "step")


def lr_schedule(name: str, epochs: int, steps_per_epoch: int, warmup_steps: int = 0, step_epochs: int = 40,
                step_gamma: float = 0.1, epoch_offset: int = 0):
    """LR factor per optimizer step (for ``LambdaLR``, stepped every optimizer step).

    ``cosine``: snnres's, ``cosine_with_warmup`` over all steps. ``cosine-epoch``: constant within
    an epoch ``e`` at ``(1 + cos(pi (e + epoch_offset) / epochs)) / 2``, PyTorch's
    ``CosineAnnealingLR(T_max=epochs)`` stepped per epoch. ``step``: ``step_gamma ** (e // step_epochs)``,
    ``StepLR(step_epochs, step_gamma)`` per epoch."""
    if name == "cosine":
        return cosine_with_warmup(epochs * steps_per_epoch, warmup_steps)
    if name == "cosine-epoch":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step // steps_per_epoch + epoch_offset) / epochs)))
    if name == "step":
        return lambda step: step_gamma ** ((step // steps_per_epoch + epoch_offset) // step_epochs)
    raise ValueError(f"--lr-schedule {name!r}: expected one of {list(LR_SCHEDULES)}")


def parameter_groups(model: nn.Module, weight_decay: float, on: str = "weights") -> list[dict]:
    """Weight decay on weights of convolutions and linear layers, not on BatchNorm or biases
    (``on="weights"``), or on every parameter (``on="all"``, as the MS/DS/SEW authors' SGD)."""
    if on == "all":
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    if on != "weights":
        raise ValueError(f"--weight-decay-on {on!r}: expected 'weights' (conv/linear weights) or 'all'")
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@dataclass
class Optimization:
    """What one optimizer step needs besides the model and the batch."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    device: torch.device
    dist_info: DistInfo
    amp: bool = False
    amp_dtype: str = "bf16"
    label_smoothing: float = 0.0
    on_nonfinite: str = "stop"  # stop | skip


def any_process(flags: list[bool], dist_info: DistInfo, device: torch.device) -> list[bool]:
    """Each flag OR-ed over the DDP processes (one all-reduce), so that all of them act alike."""
    if not dist_info.enabled:
        return flags
    return [v > 0 for v in all_reduce_sum([float(f) for f in flags], dist_info, device)]


def nonfinite_gradients(model: nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return False
    return not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads, float("inf")))).all())


def train_epoch(model, loader, steps: int, opt: Optimization, counter: SpikeCounter, progress: EpochProgress,
                epoch: int, stop=None, show=None, after_step=None) -> bool:
    """Run the steps ``progress.step .. steps-1`` of epoch ``epoch`` (0-based); ``loader`` yields
    exactly those batches; ``after_step()`` runs after each step. Returns False when ``stop`` was raised (between two steps: ``progress``
    then holds the position to save), True when the epoch's training part is done.

    A step whose loss or gradients are not finite on any process updates nothing (weights,
    optimizer, BatchNorm statistics): with ``on_nonfinite="skip"`` it is counted in
    ``progress.skipped``, otherwise :class:`TrainingDiverged` names the epoch and step.
    """
    model.train()
    counter.load_state_dict(progress.spikes)
    start, spent = time.perf_counter(), progress.seconds
    batches = iter(loader) if progress.step < steps else None
    optimizer, scheduler, scaler = opt.optimizer, opt.scheduler, opt.scaler
    if any_process([bool(stop)], opt.dist_info, opt.device)[0]:
        return False
    while progress.step < steps:
        if stop and not opt.dist_info.enabled:  # under DDP the flag is agreed on with the step's all-reduce
            return False
        inputs, targets = next(batches)
        inputs, targets = inputs.to(opt.device, non_blocking=True), targets.to(opt.device, non_blocking=True)
        buffers = [b.detach().clone() for b in model.buffers()]  # BatchNorm statistics, if the step fails
        with autocast(opt.device, opt.amp, opt.amp_dtype):
            logits = model(inputs)
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=opt.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        bad_loss = not bool(torch.isfinite(loss))
        bad_grads = scaler is None and not bad_loss and nonfinite_gradients(model)  # the scaler skips inf grads itself
        bad_loss, bad_grads, stopping = any_process([bad_loss, bad_grads, bool(stop)], opt.dist_info, opt.device)
        if bad_loss or bad_grads:
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for b, saved in zip(model.buffers(), buffers):
                    b.copy_(saved)
            what = "loss" if bad_loss else "gradients"
            where = f"epoch {epoch + 1}, step {progress.step + 1} of {steps}"
            if opt.on_nonfinite != "skip":
                raise TrainingDiverged(f"the {what} became non-finite (loss {loss.item():.4g}) at {where}; "
                                       "no weight was updated by that step")
            progress.skipped += 1
            if show is not None:
                show(None, f"{where}: non-finite {what}, step skipped ({progress.skipped} so far)")
        else:
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            n = targets.shape[0]
            progress.loss_sum += loss.item() * n
            progress.correct += (logits.argmax(1) == targets).sum().item()
            progress.seen += n
        scheduler.step()
        progress.step += 1
        progress.seconds = spent + time.perf_counter() - start
        if show is not None:
            seen = max(progress.seen, 1)
            show((progress.loss_sum / seen, progress.correct / seen,
                  progress.seen / max(progress.seconds, 1e-9), counter.firing_rate), None)
        if stopping and progress.step < steps:
            return False
        if after_step is not None and progress.step < steps:
            after_step()
    return True


def epoch_stats(progress: EpochProgress, counter: SpikeCounter, dist_info: DistInfo, device) -> EpochStats:
    loss_sum, correct, seen = all_reduce_sum([progress.loss_sum, progress.correct, progress.seen], dist_info, device)
    return EpochStats(loss_sum / max(seen, 1), correct / max(seen, 1), int(seen), progress.seconds,
                      counter.firing_rate)


@torch.no_grad()
def evaluate(model, loader, device, amp: bool = False, amp_dtype: str = "bf16",
             dist_info: DistInfo | None = None, max_batches: int | None = None, stop=None) -> EpochStats | None:
    """Top-1, top-5 and mean cross-entropy over ``loader``; None if ``stop`` was raised on the way."""
    model.eval()
    loss_sum = top1 = top5 = seen = 0.0
    start = time.perf_counter()
    for i, (inputs, targets) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        if stop is not None and any_process([bool(stop)], dist_info or DistInfo(), device)[0]:
            return None
        inputs, targets = inputs.to(device), targets.to(device)
        with autocast(device, amp, amp_dtype):
            logits = model(inputs).float()
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
        k = min(5, logits.shape[1])
        best = logits.topk(k, dim=1).indices
        top1 += (best[:, 0] == targets).sum().item()
        top5 += (best == targets[:, None]).any(1).sum().item()
        seen += targets.shape[0]
    if dist_info is not None:
        loss_sum, top1, top5, seen = all_reduce_sum([loss_sum, top1, top5, seen], dist_info, device)
    if seen == 0:
        raise ValueError("the evaluation loader yielded no samples")
    return EpochStats(loss_sum / seen, top1 / seen, int(seen), time.perf_counter() - start, 0.0, top5 / seen)
