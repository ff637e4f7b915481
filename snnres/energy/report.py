"""``energy_report(model, loader)``: spikes per neuron, SOPs, MACs and energy against the ANN.

Counted with hooks on the real forward pass. Neuron layers (LIF, MLF) give neurons, spikes,
spikes per neuron per sample and the firing rate per step; an MLF output of k counts as k spikes.
Synaptic layers give SOPs (spike inputs) or MACs (real-valued inputs), see ``counting.py``.
Energy: ``E_SNN = SOPs * E_AC + MACs * E_MAC``; the ANN is the same network run once (T=1) with
every synaptic layer dense: ``E_ANN = MACs_ANN * E_MAC``. All totals are per sample.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from ..neurons import SpikingNeuron
from .constants import EnergyModel
from .counting import SYNAPTIC, count_layer


@dataclass
class EnergyReport:
    layers: list[dict[str, Any]]
    total: dict[str, Any]
    energy: EnergyModel
    samples: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "energy_model": vars(self.energy), "total": self.total,
                "layers": self.layers, "notes": self.notes}

    def to_json(self, path: str | Path) -> Path:
        from ..files import write_text

        return write_text(path, json.dumps(_finite(self.to_dict()), indent=2, allow_nan=False))

    def to_markdown(self) -> str:
        lines = ["| layer | kind | neurons | spikes/neuron | firing rate | SOPs | MACs | note |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in self.layers:
            lines.append(f"| {r['name']} | {r['kind']} | {r['neurons']} | {_fmt(r['spikes_per_neuron'])} | "
                         f"{_fmt(r['firing_rate'])} | {r['sops']:.4g} | {r['macs']:.4g} | {r['note']} |")
        t = self.total
        lines += ["", f"Per sample: {t['sops']:.4g} SOPs, {t['macs']:.4g} MACs -> {t['energy_pj'] / 1e6:.4g} uJ "
                  f"(ANN: {t['ann_macs']:.4g} MACs -> {t['ann_energy_pj'] / 1e6:.4g} uJ, "
                  f"ratio {_fmt(t['ann_over_snn'])}x); {_fmt(t['spikes_per_neuron'])} spikes per neuron. "
                  f"Constants: E_AC {self.energy.e_ac_pj} pJ, E_MAC {self.energy.e_mac_pj} pJ ({self.energy.source})."]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        from .plot import plot_report

        return plot_report(self, Path(path))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _batches(loader: Iterable, max_batches: int | None):
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            return
        yield batch


@torch.no_grad()
def energy_report(model: nn.Module, loader: Iterable, max_batches: int | None = None,
                  energy: EnergyModel | None = None, device: torch.device | str | None = None) -> EnergyReport:
    """Run ``model`` over ``loader`` (``(inputs, targets)`` batches) and count (see module docstring)."""
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be >= 1 (or None for the whole loader), got {max_batches}")
    energy = energy or EnergyModel()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    neurons: OrderedDict[str, dict] = OrderedDict()
    synapses: OrderedDict[str, dict] = OrderedDict()

    def neuron_hook(name):
        def hook(module, inputs, output):
            row = neurons.setdefault(name, {"spikes": 0.0, "neurons": 0, "sample_steps": 0, "steps": 1})
            row["spikes"] += float(output.detach().float().sum())
            T = output.shape[0]
            per_step = output[0].numel()  # [B, ...] of one step
            batch = output.shape[1] if output.ndim > 1 else 1
            row["neurons"] = per_step // max(batch, 1)
            row["steps"] = T
            row["sample_steps"] += T * batch
        return hook

    def synapse_hook(name):
        def hook(module, inputs):
            sops, macs, spiking, dense = count_layer(module, inputs[0])
            row = synapses.setdefault(name, {"sops": 0.0, "macs": 0.0, "spiking": spiking, "ann_macs_per_sample": dense})
            row["sops"] += sops
            row["macs"] += macs
            row["spiking"] = row["spiking"] and spiking
        return hook

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, SpikingNeuron):
            handles.append(module.register_forward_hook(neuron_hook(name)))
        elif isinstance(module, SYNAPTIC):
            handles.append(module.register_forward_pre_hook(synapse_hook(name)))
    was_training = model.training
    model.eval()
    samples = 0
    try:
        for inputs, _ in _batches(loader, max_batches):
            model(inputs.to(device))
            samples += inputs.shape[0]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if samples == 0:
        raise ValueError("the loader yielded no batches: nothing to count")
    return _summarise(neurons, synapses, samples, energy)


def _summarise(neurons, synapses, samples: int, energy: EnergyModel) -> EnergyReport:
    layers, notes = [], []
    total_spikes = total_neurons = 0.0
    for name, r in neurons.items():
        spikes_per_neuron = r["spikes"] / (r["neurons"] * samples) if r["neurons"] else 0.0
        rate = r["spikes"] / (r["neurons"] * r["sample_steps"]) if r["neurons"] and r["sample_steps"] else 0.0
        total_spikes += r["spikes"] / samples
        total_neurons += r["neurons"]
        layers.append({"name": name, "kind": "neurons", "neurons": r["neurons"], "spikes": r["spikes"] / samples,
                       "spikes_per_neuron": spikes_per_neuron, "firing_rate": rate, "sops": 0.0, "macs": 0.0,
                       "note": ""})
    sops = macs = ann_macs = 0.0
    for name, r in synapses.items():
        note = "fed by spikes: SOPs (one AC per spike and target)" if r["spiking"] else \
            "fed by real values (encoding / membrane shortcut / averaged features): MACs"
        layers.append({"name": name, "kind": "synapses", "neurons": 0, "spikes": 0.0, "spikes_per_neuron": None,
                       "firing_rate": None, "sops": r["sops"] / samples, "macs": r["macs"] / samples, "note": note})
        sops += r["sops"] / samples
        macs += r["macs"] / samples
        ann_macs += r["ann_macs_per_sample"]
    if not neurons:
        notes.append("no spiking layers: an ANN; the report gives its MACs and energy only")
    notes.append("an MLF neuron emitting k level spikes in a step counts as k spikes")
    snn_pj = sops * energy.e_ac_pj + macs * energy.e_mac_pj
    ann_pj = ann_macs * energy.e_mac_pj
    total = {"spikes": total_spikes, "neurons": total_neurons,
             "spikes_per_neuron": total_spikes / total_neurons if total_neurons else None,
             "sops": sops, "macs": macs, "energy_pj": snn_pj, "ann_macs": ann_macs, "ann_energy_pj": ann_pj,
             "ann_over_snn": ann_pj / snn_pj if snn_pj > 0 else None}
    return EnergyReport(layers, total, energy, samples, notes)
