"""Neuron backends: one table, one signature.

Each backend module has ``run(x_seq, v, tau, params) -> (spikes, v_last)`` with ``x_seq [T, ...]``,
``v [levels, ...]`` and ``params`` a ``NeuronParams``; ``input_grad(x_seq, grad_spikes, tau, params,
need_tau) -> (grad_x, grad_tau | None)``, the gradient of a run from rest computed from its input
alone (for layers that keep the neuron's input instead of its autograd graph); and ``available() -> str | None``
(None when usable, else the reason and what to install). Modules are imported lazily, so a
missing numba or CuPy costs nothing until that backend is asked for.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

#: backend name -> module implementing it
BACKENDS: dict[str, str] = {
    "torch": "snnres.neurons.backends.torch_reference",
    "numba": "snnres.neurons.backends.numba_cpu",
    "cupy": "snnres.neurons.backends.cupy_cuda",
}


def backend_module(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected 'auto' or one of {sorted(BACKENDS)}")
    return importlib.import_module(BACKENDS[name])


def unavailable_reason(name: str, device: torch.device | str = "cpu") -> str | None:
    """None if backend ``name`` can run on ``device``, else why not and what to do."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return "PyTorch sees no CUDA device here"
    module = backend_module(name)
    reason = module.available()
    if reason is not None:
        return reason
    if name == "numba" and device.type != "cpu":
        return f"the numba backend runs on the CPU, but the input is on {device}; use backend='cupy' or 'torch'"
    if name == "cupy" and device.type != "cuda":
        return f"the cupy backend runs on CUDA tensors, but the input is on {device}; move it with .cuda() or use backend='numba'"
    return None


def resolve_backend(name: str, device: torch.device | str) -> str:
    """The backend that ``name`` means for a tensor on ``device`` ('auto' picks the fastest usable)."""
    device = torch.device(device)
    if name != "auto":
        reason = unavailable_reason(name, device)
        if reason is not None:
            raise RuntimeError(f"backend {name!r} cannot run: {reason}")
        return name
    preferred = "cupy" if device.type == "cuda" else "numba" if device.type == "cpu" else "torch"
    if preferred != "torch" and unavailable_reason(preferred, device) is None:
        return preferred
    return "torch"


def get_backend(name: str, x: torch.Tensor) -> ModuleType:
    return backend_module(resolve_backend(name, x.device))


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    return [name for name in BACKENDS if unavailable_reason(name, device) is None]
