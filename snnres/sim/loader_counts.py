"""Exact event-driven counts over a data loader, averaged per sample (for ``energy-report --event-driven``)."""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from .simulator import EventSimulator


def count_over_loader(model: nn.Module, loader: Iterable, max_batches: int | None, T: int,
                      device: str | torch.device = "cpu") -> dict[str, Any]:
    """Run every sample of ``loader`` (``[T, C, H, W]`` frames, or images repeated ``T`` times) through
    the simulator on ``device``; returns per-sample SOPs, MACs, spikes and neuron updates, per layer
    and in total."""
    sim = EventSimulator(model.cpu(), device=device)  # it reads the weights on the CPU
    totals: dict[str, dict[str, float]] = {"sops": {}, "macs": {}, "spikes": {}, "neuron_updates": {}}
    samples = 0
    for b, (inputs, _) in enumerate(loader):
        if max_batches is not None and b >= max_batches:
            break
        for x in inputs:
            out = sim.run(x if x.ndim == 4 else x.unsqueeze(0).expand(T, *x.shape))
            for key, counts in (("sops", out.sops), ("macs", out.macs), ("spikes", out.spikes_per_layer),
                                ("neuron_updates", out.neuron_updates)):
                for layer, value in counts.items():
                    totals[key][layer] = totals[key].get(layer, 0) + value
            samples += 1
    if samples == 0:
        raise ValueError("the loader yielded no samples")
    per_sample = {key: {k: v / samples for k, v in d.items()} for key, d in totals.items()}
    return {"samples": samples, "per_sample": per_sample,
            **{key: sum(d.values()) for key, d in per_sample.items()}}
