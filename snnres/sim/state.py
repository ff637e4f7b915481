"""What a simulation carries between chunks (``SimState``) and what it returns (``SimResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .graph import ConvNode, Graph, LinearNode, NeuronNode


@dataclass
class SimState:
    """Everything carried between chunks: membranes, counters, the summed output."""

    membranes: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # (v [K, N], awake [P])
    fresh: set[int] = field(default_factory=set)  # layers whose ``v`` is not written yet: all at rest
    steps: int = 0
    out_sum: np.ndarray | None = None
    sops: dict[str, float] = field(default_factory=dict)
    macs: dict[str, float] = field(default_factory=dict)
    spikes: dict[str, int] = field(default_factory=dict)
    updates: dict[str, int] = field(default_factory=dict)
    trains: dict[str, list[np.ndarray]] | None = None
    plan: object = None  # plan.Plan of the last chunk the fast strategy ran

    def add_output(self, total: np.ndarray, steps: int) -> None:
        """Account a chunk of ``steps`` steps whose output layer summed to ``total`` (float64)."""
        self.out_sum = total if self.out_sum is None else self.out_sum + total
        self.steps += steps


@dataclass
class SimResult:
    """``logits [classes]`` (time-mean of the output layer); counts keyed by module name.

    ``sops``: synaptic operations of layers fed by spikes (events x fan-out at each event's
    position, an event of count k counting k times); ``macs``: layers fed by real values
    (non-zero inputs x fan-out); ``neuron_updates``: neuron-steps that were computed;
    ``spike_trains``: ``[T, C, H, W]`` spikes per neuron layer when run with ``record=True``.
    """

    logits: torch.Tensor
    spikes_per_layer: dict[str, int]
    sops: dict[str, float]
    macs: dict[str, float]
    neuron_updates: dict[str, int]
    steps: int
    spike_trains: dict[str, torch.Tensor] | None = None
    layers: list[str] = field(default_factory=list)  # counted layers in execution order
    plan: object = None  # plan.Plan: the kernels of the last chunk (fast strategy) and why

    @property
    def prediction(self) -> int:
        return int(self.logits.argmax())

    @property
    def total_sops(self) -> float:
        return float(sum(self.sops.values()))


def result(graph: Graph, state: SimState) -> SimResult:
    if state.steps == 0:
        raise ValueError("no time step has been simulated yet")
    logits = torch.from_numpy((state.out_sum / state.steps).astype(np.float32))
    trains = None
    if state.trains is not None:
        trains = {}
        for name, parts in state.trains.items():
            node = next(n for n in graph.nodes if n.name == name)
            flat = np.concatenate(parts).astype(np.float32)
            trains[name] = _to_torch_layout(flat, node.shape)
    layers = graph.memo.get("counted")
    if layers is None:
        layers = graph.memo["counted"] = list(dict.fromkeys(
            n.name for n in graph.nodes[1:] if isinstance(n, (ConvNode, LinearNode, NeuronNode))))
    return SimResult(logits, dict(state.spikes), dict(state.sops), dict(state.macs), dict(state.updates),
                     state.steps, trains, list(layers), state.plan)


def _to_torch_layout(flat: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """``[T, N]`` channels-last -> ``[T, C, H, W]`` (or ``[T, F]``)."""
    if len(shape) == 3:
        c, h, w = shape
        return torch.from_numpy(np.ascontiguousarray(flat.reshape(-1, h, w, c).transpose(0, 3, 1, 2)))
    return torch.from_numpy(flat.reshape(-1, *shape))
