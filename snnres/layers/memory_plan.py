"""What a ``conv -> BatchNorm [-> neuron]`` unit keeps for the backward: one plan per ``memory`` mode.

``memory`` (``create_model(..., memory=...)``, ``snnres train --memory``):

- ``"reference"``: the modules as they are; autograd keeps every intermediate in its own dtype.
- ``"default"``: the conv keeps its input as bits (0/1 spikes) or bytes (counts up to 255)
  instead of floats (``StoredInputConv``), and BN + neuron keep only BN's input (``NormNeuron``);
  a conv of the static image (repeated over T) followed by BN alone keeps only the image and is
  recomputed for one copy of it. The backward adds one BN forward per neuron layer and that
  conv; its conv backward is cheaper where the input is repeated or the conv is a strided 1x1
  (``conv_grad``), which pays for them.
- ``"lean"``: each unit keeps only its input, compactly; the conv and BN are recomputed in the
  backward (``RecomputedUnit``): roughly one more conv forward per conv.

Every plan gives the same spikes and outputs, and the same gradients to float rounding (tested
against ``"reference"``). Without gradients (``torch.no_grad()``, or nothing requires grad) every
plan runs the modules plainly. Forward hooks on convs and neurons fire as usual; a plain
``nn.BatchNorm2d`` on the CPU is run through ``batch_norm_parts`` (to keep its statistics), so
hooks on it fire only in ``"reference"``.
"""

from __future__ import annotations

import difflib

import torch
from torch import nn

from .conv_grad import is_repeated_over_time
from .lean_autograd import NormNeuron, RecomputedUnit, StoredInputConv, autocast_state
from .time import SeqToANN

MEMORY_MODES = ("default", "lean", "reference")


def check_memory(memory: str) -> str:
    """``memory`` if it names a plan, else a ``ValueError`` listing them."""
    if memory not in MEMORY_MODES:
        close = difflib.get_close_matches(str(memory), MEMORY_MODES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown memory mode {memory!r}: expected one of {', '.join(MEMORY_MODES)}.{hint}")
    return memory


def _plain_conv(conv: nn.Module) -> nn.Conv2d | None:
    """The ``nn.Conv2d`` inside a time-merged conv, if ``StoredInputConv`` can run it."""
    inner = conv.module if isinstance(conv, SeqToANN) else None
    if isinstance(inner, nn.Conv2d) and inner.padding_mode == "zeros" and not isinstance(inner.padding, str):
        return inner
    return None


def _needs_grad(x: torch.Tensor, *modules: nn.Module | None) -> bool:
    if not torch.is_grad_enabled():
        return False
    if x.requires_grad:
        return True
    return any(p.requires_grad for m in modules if m is not None for p in m.parameters())


def _params(*modules: nn.Module | None) -> list[torch.Tensor]:
    return [p for m in modules if m is not None for p in m.parameters()]


def conv_norm_neuron(x_seq: torch.Tensor, conv: nn.Module, norm: nn.Module, neuron: nn.Module | None = None, *,
                     memory: str = "default", max_count: int | None = None) -> torch.Tensor:
    """``neuron(norm(conv(x_seq)))`` (``norm(conv(x_seq))`` without a neuron) over ``[T, B, ...]``,
    along the plan ``memory`` names (module docstring). ``max_count``: ``x_seq`` holds whole numbers
    ``0..max_count`` (spikes or spike counts), so it may be kept as bits or bytes; None: any values."""
    if memory == "reference" or not _needs_grad(x_seq, conv, norm, neuron):
        y = norm(conv(x_seq))
        return y if neuron is None else neuron(y)
    state = autocast_state(x_seq.device.type)
    inner = _plain_conv(conv)
    if memory == "lean" or (inner is not None and neuron is None and is_repeated_over_time(x_seq)):
        # lean: every unit; default: a conv of the static image, recomputed once per image
        return RecomputedUnit.apply(x_seq, conv, inner, norm, neuron, max_count, state,
                                    *_params(conv, norm, neuron))
    if inner is None:
        c = conv(x_seq)
    else:
        c = StoredInputConv.apply(x_seq, inner.weight, inner.bias, conv, inner, max_count)
    if neuron is None:
        return norm(c)
    return NormNeuron.apply(c, norm, neuron, state, *_params(norm, neuron))


def is_norm(module: nn.Module) -> bool:
    """A time-merged BatchNorm (plain or threshold-scaled)."""
    return isinstance(module, SeqToANN) and isinstance(module.module, nn.modules.batchnorm._BatchNorm)


def is_conv(module: nn.Module) -> bool:
    """A time-merged conv, possibly behind a pooling or other convs (``nn.Sequential`` ending in a conv)."""
    if not isinstance(module, SeqToANN):
        return False
    inner = module.module
    last = inner[-1] if isinstance(inner, nn.Sequential) and len(inner) else inner
    return isinstance(last, nn.Conv2d)


def is_spiking_neuron(module: nn.Module) -> bool:
    """An snnres neuron: whole-number outputs ``0..max_count`` and a backward from its input."""
    return hasattr(module, "max_count") and hasattr(module, "input_grad")


def spike_count_bound(module: nn.Module | None) -> int | None:
    """The largest whole number ``module`` outputs if it is a spiking neuron, else None."""
    return module.max_count if module is not None and is_spiking_neuron(module) else None


def count_after(layer: nn.Module, count: int | None) -> int | None:
    """The whole-number bound of ``layer``'s output given its input's (None: any values)."""
    if is_spiking_neuron(layer):
        return layer.max_count
    if isinstance(layer, SeqToANN) and isinstance(layer.module, nn.MaxPool2d):
        return count  # a max of counts is a count
    return None


class SpikingSequential(nn.Sequential):
    """An ``nn.Sequential`` (same layers, same parameter names) whose ``conv -> BN [-> neuron]`` runs
    go through ``conv_norm_neuron``; other layers run as they are.

    ``in_max_count``: the input holds whole numbers ``0..in_max_count`` (None: any values); the
    count after a unit ending in a neuron is that neuron's ``max_count``.
    """

    def __init__(self, *layers: nn.Module, memory: str = "default", in_max_count: int | None = None):
        super().__init__(*layers)
        self.memory = check_memory(memory)
        self.in_max_count = in_max_count

    @property
    def out_max_count(self) -> int | None:
        count = self.in_max_count
        for layer in self:
            count = count_after(layer, count)
        return count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers, count, i = list(self), self.in_max_count, 0
        while i < len(layers):
            if i + 1 < len(layers) and is_conv(layers[i]) and is_norm(layers[i + 1]):
                neuron = layers[i + 2] if i + 2 < len(layers) and is_spiking_neuron(layers[i + 2]) else None
                x = conv_norm_neuron(x, layers[i], layers[i + 1], neuron, memory=self.memory, max_count=count)
                count = spike_count_bound(neuron)
                i += 2 if neuron is None else 3
                continue
            x = layers[i](x)
            count = count_after(layers[i], count)
            i += 1
        return x


def set_memory(model: nn.Module, memory: str) -> nn.Module:
    """Switch every unit of ``model`` to the plan ``memory`` (in place; returns ``model``).

    Raises ``ValueError`` for a mode other than ``"default"`` when ``model`` has no unit that
    follows a plan (an ANN, say), since the request could not be honoured.
    """
    check_memory(memory)
    found = False
    for module in model.modules():
        if hasattr(module, "memory"):
            module.memory = memory
            found = True
    if not found and memory != "default":
        raise ValueError(f"memory={memory!r} applies to snnres's spiking models; {type(model).__name__} has "
                         "no layers that follow a memory plan")
    return model
