"""What a training configuration keeps for the backward, per stage and per sample (``snnres memory``).

Measured, not estimated: forwards of the real model at batch 2 and 3 on the CPU, with the chosen
memory plan, counting the distinct non-parameter storages autograd saves
(``torch.autograd.graph.saved_tensors_hooks``), each attributed to the top-level part (stem,
stage i, head) that saved it first. What a step keeps is exactly linear in the batch from batch
2 on (at batch 1 some copies become views): the difference of the two is the per-sample cost, the
rest (per-channel statistics) a constant. On a GPU autograd keeps the same tensors (the CUDA neuron
kernels keep their input, as the CPU's do), in fp32; mixed precision halves most of them.
Parameters, their gradients and the optimizer's state are listed apart: they do not grow with the
batch. The backward also needs a few activation-sized temporaries at a time, on top of this.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import torch
from torch import nn

#: Optimizer state per parameter, in parameter copies (SGD's momentum; AdamW's two moments).
OPTIMIZER_STATE = {"sgd": 1, "adamw": 2}


@dataclass
class MemoryReport:
    arch: str
    memory: str
    T: int
    input_shape: tuple[int, ...]          # one sample: (C, H, W), or (T, C, H, W) for event frames
    stages: list[tuple[str, int]]         # (part, bytes kept per sample)
    constant_bytes: int                   # kept whatever the batch (per-channel statistics)
    parameter_bytes: int
    optimizer: str = "sgd"
    notes: list[str] = field(default_factory=list)

    @property
    def per_sample(self) -> int:
        return sum(b for _, b in self.stages)

    @property
    def fixed_bytes(self) -> int:
        """Parameters, gradients and optimizer state."""
        return self.parameter_bytes * (2 + OPTIMIZER_STATE[self.optimizer])

    def for_batch(self, batch: int) -> int:
        """What a step at ``batch`` (>= 2) keeps for the backward, besides the fixed bytes."""
        return self.per_sample * batch + self.constant_bytes

    def max_batch(self, budget_bytes: float) -> int:
        """The largest batch whose kept bytes and fixed bytes fit in ``budget_bytes``."""
        spare = budget_bytes - self.fixed_bytes - self.constant_bytes
        return max(0, int(spare // self.per_sample)) if self.per_sample else 0


def heap_bytes() -> int | None:
    """Bytes glibc's ``malloc`` holds now (``mallinfo2``: in use in the heap plus mmapped chunks),
    or None without glibc: the allocator's own count of what is alive on the CPU."""
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return None
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Stem, each stage and the head of a SpikingNet; a model's children otherwise."""
    if all(hasattr(model, name) for name in ("stem", "stages", "head")):
        return ([("stem", model.stem)] + [(f"stage {i + 1}", s) for i, s in enumerate(model.stages)]
                + [("head", model.head)])
    return list(model.named_children()) or [("model", model)]


def measure_saved(model: nn.Module, x: torch.Tensor) -> tuple[list[tuple[str, int]], torch.Tensor]:
    """``([(part, bytes)], model(x))``: the distinct non-parameter storages the forward saves, and
    its output (whose graph holds them until the caller drops it or runs the backward)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    parts = _parts(model)
    current = ["input"]
    hooks = [module.register_forward_pre_hook(lambda m, a, name=name: current.__setitem__(0, name))
             for name, module in parts]
    counted: dict[int, tuple[str, int]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in counted:
            counted[ptr] = (current[0], t.untyped_storage().nbytes())
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    totals = {name: 0 for name, _ in parts}
    for name, nbytes in counted.values():
        totals[name] = totals.get(name, 0) + nbytes
    return list(totals.items()), out


def memory_report(arch: str, T: int = 4, size: int = 224, in_channels: int = 3, num_classes: int = 1000,
                  memory: str = "default", frames: bool = False, optimizer: str = "sgd",
                  **model_kwargs) -> MemoryReport:
    """Measure what one training sample of ``arch`` keeps (module docstring).

    ``frames``: the input is ``T`` event frames (``[B, T, C, H, W]``), not a static image repeated
    over ``T`` (which the memory plans keep once).
    """
    from ..models import create_model

    if optimizer not in OPTIMIZER_STATE:
        raise ValueError(f"optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZER_STATE)}")
    torch.manual_seed(0)
    model = create_model(arch, num_classes=num_classes, T=T, in_channels=in_channels, memory=memory, **model_kwargs)
    model.train()
    shape = (T, in_channels, size, size) if frames else (in_channels, size, size)
    two, three = (measure_saved(model, torch.rand(batch, *shape) * 2)[0] for batch in (2, 3))
    stages = [(name, b3 - b2) for (name, b2), (_, b3) in zip(two, three)]
    constant = sum(b for _, b in two) - 2 * sum(b for _, b in stages)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return MemoryReport(arch, memory, T, shape, stages, constant, params, optimizer)
