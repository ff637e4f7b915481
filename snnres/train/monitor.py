"""Spike counting with forward hooks on the neuron modules, for progress and summaries."""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

from torch import nn

from ..neurons import SpikingNeuron


class SpikeCounter:
    """Per neuron layer: spikes, neuron-steps and samples seen (outputs are ``[T, B, ...]``)."""

    def __init__(self) -> None:
        self.spikes: dict[str, float] = defaultdict(float)
        self.neuron_steps: dict[str, int] = defaultdict(int)
        self.neurons: dict[str, int] = {}
        self.samples: dict[str, int] = defaultdict(int)
        self.steps: dict[str, int] = {}

    def hook(self, name: str):
        def record(module, inputs, output):
            out = output.detach()
            self.spikes[name] += float(out.sum())
            self.neuron_steps[name] += out.numel()
            self.steps[name] = out.shape[0]
            self.samples[name] += out.shape[1] if out.ndim > 1 else 1
            self.neurons[name] = out[0, 0].numel() if out.ndim > 1 else 1
        return record

    @property
    def firing_rate(self) -> float:
        """Spikes per neuron per time step, over all layers."""
        steps = sum(self.neuron_steps.values())
        return sum(self.spikes.values()) / steps if steps else 0.0

    def spikes_per_neuron(self, name: str) -> float:
        """Spikes per neuron per sample (over all T steps)."""
        n = self.neurons.get(name, 0) * self.samples.get(name, 0)
        return self.spikes[name] / n if n else 0.0

    def reset(self) -> None:
        self.__init__()

    _FIELDS = ("spikes", "neuron_steps", "neurons", "samples", "steps")

    def state_dict(self) -> dict[str, dict]:
        """The counts as plain dicts (a mid-epoch checkpoint carries them)."""
        return {name: dict(getattr(self, name)) for name in self._FIELDS}

    def load_state_dict(self, state: dict[str, dict] | None) -> None:
        """Continue from ``state`` (empty or None: start from zero)."""
        self.reset()
        for name, values in (state or {}).items():
            getattr(self, name).update(values)


@contextmanager
def count_spikes(model: nn.Module):
    counter = SpikeCounter()
    handles = [m.register_forward_hook(counter.hook(name)) for name, m in model.named_modules()
               if isinstance(m, SpikingNeuron)]
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()


def mean_spikes_per_neuron(counter: SpikeCounter) -> float:
    """Spikes per neuron per sample averaged over neurons of all layers."""
    total_neurons = sum(counter.neurons[n] for n in counter.neurons)
    if not total_neurons:
        return 0.0
    return sum(counter.spikes_per_neuron(n) * counter.neurons[n] for n in counter.neurons) / total_neurons


def stage_of(name: str) -> str:
    """The stage a layer belongs to: ``stages.2.5.neuron1 -> stages.2``, ``stem.neuron -> stem``."""
    parts = name.split(".")
    if len(parts) > 2 and parts[1].isdigit():
        return ".".join(parts[:2])
    return parts[0]


def spike_rows(counter: SpikeCounter, by: str = "stages") -> list[tuple[str, int, float, float]]:
    """``(name, neurons, spikes per neuron per sample, firing rate per step)`` per layer or per stage."""
    groups: dict[str, list[str]] = {}
    for name in counter.neurons:
        groups.setdefault(name if by == "layers" else stage_of(name), []).append(name)
    rows = []
    for group, names in groups.items():
        neurons = sum(counter.neurons[n] for n in names)
        per_sample = sum(counter.neurons[n] * counter.samples[n] for n in names)
        spikes = sum(counter.spikes[n] for n in names)
        steps = sum(counter.neuron_steps[n] for n in names)
        rows.append((group, neurons, spikes / per_sample if per_sample else 0.0, spikes / steps if steps else 0.0))
    return rows


def add_name_column(table, header: str, names: list[str]) -> None:
    """A first column that shows every name whole (rich would cut ``stages.1.0.conv.neuron1`` to
    ``stages.1…`` on an 80-column terminal): the other columns give way instead."""
    table.add_column(header, no_wrap=True, min_width=max([len(header), *map(len, names)]))


def print_spike_summary(console, counter: SpikeCounter, by: str = "stages") -> None:
    """The spike table of the last epoch's training batches: one row per stage (or per layer)."""
    from rich.table import Table

    if not counter.neurons:
        return
    unit = "stage" if by == "stages" else "neuron layer"
    rows = spike_rows(counter, by)
    table = Table(title=f"spikes per {unit} (last epoch's training batches)")
    add_name_column(table, unit, [r[0] for r in rows])
    for header in ("neurons", "spikes / neuron / sample", "firing rate / step"):
        table.add_column(header, justify="right", overflow="fold")
    for name, neurons, per_neuron, rate in rows:
        table.add_row(name, str(neurons), f"{per_neuron:.3f}", f"{rate:.4f}")
    console.print(table)
    console.print(f"mean: {mean_spikes_per_neuron(counter):.3f} spikes per neuron per sample"
                  + (" (per layer: --spike-table layers)" if by == "stages" else ""), markup=False)


__all__ = ["SpikeCounter", "count_spikes", "mean_spikes_per_neuron", "print_spike_summary", "spike_rows", "stage_of",
           "add_name_column"]
