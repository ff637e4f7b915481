"""Helpers for the simulator tests: a dense time-stepped runner and random dyadic networks.

Weights, BatchNorm statistics and pooling divisors are dyadic (multiples of powers of two, eps=0,
variances powers of 4, tdBN scales 1/2), so every sum of spikes times weights is exact in float32 whatever the
order of the additions: the dense and the event-driven run must then agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from snnres.data import bin_events
from snnres.layers import ThresholdScaledBatchNorm2d
from snnres.neurons import LIF, MLF

NEURONS = (LIF, MLF)


class TimeSequential(nn.Sequential):
    """Dense reference: ``[B, T, C, H, W]`` -> logits ``[B, K]``; layers per step, neurons over time."""

    def forward(self, x):
        x = x.transpose(0, 1)  # [T, B, ...]
        T, B = x.shape[:2]
        for layer in self:
            if isinstance(layer, NEURONS):
                x = layer(x)
            else:
                y = layer(x.reshape(T * B, *x.shape[2:]))
                x = y.reshape(T, B, *y.shape[1:])
        return x.mean(0)


def dyadic_(model: nn.Module, rng: np.random.Generator, bits: int = 5) -> nn.Module:
    """Round parameters to multiples of ``2**-bits``; BN with eps=0 and variances in {1/4, 1, 4}."""
    q = 2.0 ** bits
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.round(m.weight * q) / q)
                if m.bias is not None:
                    m.bias.copy_(torch.round(m.bias * q) / q)
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.eps = 0.0
                m.running_var.copy_(torch.from_numpy(4.0 ** rng.integers(-1, 2, n)).float())
                m.running_mean.copy_(torch.from_numpy(rng.integers(-4, 5, n) / 16.0).float())
                m.weight.copy_(torch.from_numpy(rng.integers(4, 17, n) / 8.0).float())
                m.bias.copy_(torch.from_numpy(rng.integers(-4, 5, n) / 16.0).float())
                if isinstance(m, ThresholdScaledBatchNorm2d):
                    m.scale = 0.5  # a tdBN's alpha * V_th (0.6 in DS-ResNet) scales lambda: keep it dyadic
    return model.eval()


def float_(model: nn.Module, rng: np.random.Generator) -> nn.Module:
    """Ordinary float32 parameters (not dyadic): sums round, so only the same additions in the same
    order give the same bits. BatchNorm statistics random around 1; weights re-drawn."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.from_numpy(rng.normal(0.5 / fan_in, fan_in ** -0.5, m.weight.shape)).float())
                if m.bias is not None:
                    m.bias.copy_(torch.from_numpy(rng.normal(0, 0.05, m.bias.shape)).float())
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.eps = 1e-5
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, n)).float())
                m.running_mean.copy_(torch.from_numpy(rng.uniform(-0.1, 0.1, n)).float())
                if m.weight is not None:
                    m.weight.copy_(torch.from_numpy(rng.uniform(0.7, 2.0, n)).float())
                    m.bias.copy_(torch.from_numpy(rng.uniform(-0.1, 0.2, n)).float())
    return model.eval()


def random_events(rng: np.random.Generator, sensor_size, n: int, duration: int = 10_000) -> np.ndarray:
    from snnres.data.events import EVENT_DTYPE

    w, h, p = sensor_size
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, w, n)
    ev["y"] = rng.integers(0, h, n)
    ev["p"] = rng.integers(0, p, n).astype(bool)
    ev["t"] = np.sort(rng.integers(0, duration, n))
    return ev


def frames_of(events, sensor_size, T) -> torch.Tensor:
    return torch.from_numpy(bin_events(events, sensor_size, T).astype(np.float32))


def dense_run(model: nn.Module, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits ``[K]`` and every neuron module's spikes ``[T, ...]`` for one sample ``[T, C, H, W]``."""
    names = {m: n for n, m in model.named_modules()}
    spikes: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: spikes.__setitem__(names[mod], o[:, 0].detach().clone()))
             for m in model.modules() if isinstance(m, NEURONS)]
    try:
        with torch.no_grad():
            logits = model(frames[None])[0]
    finally:
        for h in hooks:
            h.remove()
    return logits, spikes


def random_conv_net(rng: np.random.Generator, sensor_size, variant: int, classes: int = 5) -> TimeSequential:
    """A small random SNN; ``variant`` picks the mix of stride, padding, pooling and neurons."""
    torch.manual_seed(int(rng.integers(1 << 30)))
    p = sensor_size[2]
    neuron = [lambda: LIF(tau=2.0, v_threshold=0.5),
              lambda: MLF(),
              lambda: LIF(tau=4 / 3, v_threshold=0.5, decay_input=False, detach_reset=True, fire="gt"),
              lambda: LIF(tau=1.5, v_threshold=0.75, v_reset=None)][variant % 4]
    pool = [nn.AvgPool2d(2), nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d(2, 2)][variant % 4]
    stride, pad = [(2, 1), (1, 0), (2, 2), (1, 1)][(variant // 4) % 4]
    layers = [
        nn.Conv2d(p, 8, 3, stride=stride, padding=pad), nn.BatchNorm2d(8), neuron(),
        nn.Conv2d(8, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12), neuron(),
        pool,
        nn.Conv2d(12, 8, 1), neuron(),
    ]
    if variant % 2 == 0:
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes)]
    else:  # a classifier over every position (exercises the flatten order)
        with torch.no_grad():
            features = TimeSequential(*layers)(torch.zeros(1, 1, p, sensor_size[1], sensor_size[0])).numel()
        layers += [nn.Flatten(), nn.Linear(features, classes)]
    return dyadic_(TimeSequential(*layers), rng)


def poison_scratch(graph) -> int:
    """Fill every array a graph keeps between runs (its scratch buffers, and the membranes of
    finished runs waiting for the next recording) with NaN (floats) or the largest integer;
    returns how many membrane sets there were."""
    store = graph.scratch.__dict__
    arrays = [a for a in store.values() if isinstance(a, np.ndarray)]
    pools = store.get("membranes", [])
    for membranes in pools:
        for v, awake in membranes.values():
            arrays += [v, awake]
    for a in arrays:
        a[...] = np.nan if a.dtype.kind == "f" else np.iinfo(a.dtype).max
    return len(pools)
