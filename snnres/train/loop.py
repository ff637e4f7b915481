"""One training epoch and one evaluation pass: small functions the runner calls."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import DistInfo, all_reduce_sum
from .monitor import SpikeCounter


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


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


def train_epoch(model, loader, optimizer, scheduler, scaler, device, cfg, dist_info: DistInfo,
                counter: SpikeCounter, progress=None) -> EpochStats:
    model.train()
    counter.reset()
    loss_sum = correct = seen = 0.0
    start = time.perf_counter()
    for step, (inputs, targets) in enumerate(loader):
        if cfg.max_steps_per_epoch is not None and step >= cfg.max_steps_per_epoch:
            break
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with autocast(device, cfg.amp, cfg.amp_dtype):
            logits = model(inputs)
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became {loss.item()} at step {step}: lower --lr, or use --amp-dtype bf16"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        n = targets.shape[0]
        loss_sum += loss.item() * n
        correct += (logits.argmax(1) == targets).sum().item()
        seen += n
        if progress is not None:
            progress(loss_sum / seen, correct / seen, seen / (time.perf_counter() - start), counter.firing_rate)
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], dist_info, device)
    return EpochStats(loss_sum / max(seen, 1), correct / max(seen, 1), int(seen),
                      time.perf_counter() - start, counter.firing_rate)


@torch.no_grad()
def evaluate(model, loader, device, amp: bool = False, amp_dtype: str = "bf16",
             dist_info: DistInfo | None = None, max_batches: int | None = None) -> EpochStats:
    """Top-1, top-5 and mean cross-entropy over ``loader``."""
    model.eval()
    loss_sum = top1 = top5 = seen = 0.0
    start = time.perf_counter()
    for i, (inputs, targets) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
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
