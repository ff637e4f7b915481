"""One registry of architectures (timm-style): ``@register`` a builder, ``create_model`` by name.

Fixed names (``ms-resnet18``) are registered as they are; depth families (``ms-resnet-cifar{N}``)
register a prefix and a parser that turns the number into the builder's arguments.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable

from torch import nn

from ..layers import check_memory, set_memory

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_FAMILIES: dict[str, tuple[Callable[[int], dict], Callable[..., nn.Module], tuple[int, ...]]] = {}


def register(name: str):
    """Register ``builder(num_classes, T, in_channels, **kwargs)`` under a fixed name."""
    def wrap(builder):
        _MODELS[name] = builder
        return builder
    return wrap


def register_family(prefix: str, parse: Callable[[int], dict], examples: tuple[int, ...]):
    """Register ``{prefix}{N}`` for every N that ``parse`` accepts (it raises ValueError otherwise)."""
    def wrap(builder):
        _FAMILIES[prefix] = (parse, builder, examples)
        return builder
    return wrap


def list_models() -> list[str]:
    """Fixed names and a few members of each depth family (any valid depth works)."""
    names = set(_MODELS)
    for prefix, (_, _, examples) in _FAMILIES.items():
        names.update(f"{prefix}{n}" for n in examples)
    return sorted(names)


def create_model(name: str, num_classes: int = 10, T: int = 4, in_channels: int = 3, memory: str = "default",
                 **kwargs) -> nn.Module:
    """Build a registered architecture by name (lower-case, dash-separated).

    The MS-ResNet (``ms-resnet*``) and DS-ResNet (``ds-resnet*``) presets follow the authors' code
    by default (``convention="official"``): their neurons fire on ``u > V_th``, and DS-ResNet's tdBN
    divides by ``sqrt(var) + eps`` and learns the authors' ``lambda``. ``convention="spikingjelly"``
    gives SpikingJelly's ``u >= V_th`` and its tdBN (``sqrt(var + eps)``, learning ``gamma``).
    ``memory``: what training keeps for the backward (``snnres.layers.memory_plan``): "default"
    (spikes as bits/bytes, BN + neuron keep BN's input), "lean" (each conv unit keeps only its
    input and is recomputed in the backward) or "reference" (plain autograd); the same results in
    all. ``kwargs`` go to the builder (``widths``, ``first_stride``, ``backend``, ``neuron``, ...).
    """
    check_memory(memory)
    if name in _MODELS:
        return set_memory(_MODELS[name](num_classes=num_classes, T=T, in_channels=in_channels, **kwargs), memory)
    match = re.fullmatch(r"(.*?)(\d+)", name)
    if match and match.group(1) in _FAMILIES:
        parse, builder, _ = _FAMILIES[match.group(1)]
        args = parse(int(match.group(2)))
        return set_memory(builder(num_classes=num_classes, T=T, in_channels=in_channels, **args, **kwargs), memory)
    close = difflib.get_close_matches(name, list_models(), n=4, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise ValueError(f"unknown model {name!r}.{hint} `snnres models` lists them all.")


def cifar_blocks(depth: int) -> dict:
    """6n+2 layers: 3 stages of n two-conv blocks (ResNet paper, Sec. 4.2)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR-style ResNet has depth 6n+2 (8, 14, 20, 32, 44, 56, 110, 482, ...), got {depth}")
    n = (depth - 2) // 6
    return {"blocks": (n, n, n)}
