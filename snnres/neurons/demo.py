"""A LIF layer through every backend that can run here: spikes, agreement, timings."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .backends import available_backends, unavailable_reason, BACKENDS
from .functional import lif


@dataclass
class DemoRow:
    backend: str
    device: str
    forward_ms: float | None
    forward_backward_ms: float | None
    firing_rate: float | None
    equal_to_torch: bool | None
    note: str = ""


def _time_ms(fn, repeats: int) -> float:
    fn()  # warm-up: compiles the kernels the first time
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1e3


def run_demo(T: int = 8, neurons: int = 2**16, repeats: int = 5, seed: int = 0) -> list[DemoRow]:
    """Run ``lif`` on a ``[T, neurons]`` input on each backend and device it supports."""
    rows = []
    x_cpu = torch.randn(T, neurons, generator=torch.Generator().manual_seed(seed)) + 0.8
    reference = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        x = x_cpu.to(device)
        reference[device] = lif(x, backend="torch")[0]
        for name in BACKENDS:
            reason = unavailable_reason(name, device)
            if reason is not None:
                if device == "cpu" or name != "numba":
                    rows.append(DemoRow(name, device, None, None, None, None, reason))
                continue
            spikes = lif(x, backend=name)[0]
            xg = x.clone().requires_grad_()

            def forward_backward():
                lif(xg, backend=name)[0].sum().backward()

            rows.append(DemoRow(
                name, device,
                _time_ms(lambda: lif(x, backend=name), repeats),
                _time_ms(forward_backward, repeats),
                spikes.float().mean().item(),
                bool(torch.equal(spikes, reference[device])),
            ))
    return rows


__all__ = ["DemoRow", "available_backends", "run_demo"]
