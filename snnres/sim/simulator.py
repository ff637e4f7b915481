"""``EventSimulator``: run a trained network on events, touching only what the events reach.

The model is read once per input shape into a ``graph.Graph`` (``trace.py``: BatchNorm folded);
each chunk of steps runs with the chosen strategy: ``fast`` (``fast.py``: the kernels
``plan.Planner`` picks, with buffers from a ``workspace.Workspace``), ``reference``
(``reference.py``: plain numpy, the oracle) or, on a CUDA device, ``cuda.py``. A stream
(``stream()``) carries the neuron state between chunks. ``README.md``: how it maps to hardware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from . import blocks  # noqa: F401  (handlers for the blocks of snnres.models)
from . import cuda, fast, reference
from .graph import Graph, InputNode, UnsupportedLayerError
from .plan import CostModel, Planner
from .signals import Events
from .state import SimResult, SimState
from .trace import trace
from .workspace import Workspace

if TYPE_CHECKING:
    from .stream import EventStream


STRATEGIES = ("fast", "reference")


class EventSimulator:
    """Event-driven inference of a trained SNN (eval-mode BatchNorm folded into the weights).

    ``run(events, sensor_size, T)`` bins Tonic events like ``ToFrame(sensor_size, n_time_bins=T)``;
    ``run(frames)`` takes a ``[T, C, H, W]`` frame tensor. ``stream(...)`` feeds chunks.
    ``device``: ``"cpu"`` (numba kernels) or a CUDA device (CuPy kernels, ``cuda.py``).
    ``strategy``: ``"fast"`` (the planned, optimised kernels) or ``"reference"`` (``reference.py``:
    plain numpy, every neuron every step; what the fast strategy is tested against, bit for bit).
    ``costs``: the fast strategy's break-even points (``plan.CostModel``; e.g. ``plan.ALWAYS_GATHER``).
    The weights are read (and BN folded) once per input shape: build a new simulator after
    changing the model.
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", strategy: str = "fast",
                 costs: CostModel = CostModel()):
        if not isinstance(model, nn.Module):
            raise TypeError(f"EventSimulator needs an nn.Module, got {type(model).__name__}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy!r}")
        self.model = model
        self.strategy = strategy
        self.costs = costs
        self.device = torch.device(device)
        if self.device.type != "cpu" and strategy == "reference":
            raise ValueError(f"the reference strategy runs on the CPU only, not on {self.device}; use device='cpu'")
        if self.device.type != "cpu":
            cuda.check_device(self.device)
            if self.device.index is None:
                self.device = torch.device("cuda", torch.cuda.current_device())
        self._graphs: dict[tuple[int, ...], Graph] = {}
        self._workspaces: dict[tuple[int, ...], Workspace] = {}
        self._planners: dict[tuple[int, ...], Planner] = {}
        check_supported(model)

    def run_chunk(self, input_shape: tuple[int, ...], state: SimState, chunk: Events) -> None:
        """Advance ``state`` by the steps of ``chunk`` (CSR input events of shape ``input_shape``)."""
        graph = self.graph(input_shape)
        if self.strategy == "reference":
            reference.run_chunk(graph, state, chunk)
        elif self.device.type == "cpu":
            fast.run_chunk(graph, self.workspace(input_shape), self.planner(input_shape), state, chunk)
        else:
            cuda.run_chunk(graph, self.workspace(input_shape), state, chunk, self.device)

    def graph(self, input_shape: tuple[int, ...]) -> Graph:
        """The node list for inputs of shape ``(C, H, W)`` (built once per shape)."""
        key = tuple(int(v) for v in input_shape)
        if key not in self._graphs:
            self._graphs[key] = build_graph(self.model, key)
        return self._graphs[key]

    def workspace(self, input_shape: tuple[int, ...]) -> Workspace:
        """What the runs on inputs of ``input_shape`` reuse (scratch arrays, weight blocks, membranes)."""
        key = tuple(int(v) for v in input_shape)
        if key not in self._workspaces:
            self._workspaces[key] = Workspace()
        return self._workspaces[key]

    def planner(self, input_shape: tuple[int, ...]) -> Planner:
        key = tuple(int(v) for v in input_shape)
        if key not in self._planners:
            self._planners[key] = Planner(self.graph(key), self.costs)
        return self._planners[key]

    def run(self, events, sensor_size=None, T: int | None = None, sort: bool = False,
            record: bool = False) -> SimResult:
        """Simulate one recording from rest: Tonic events (with ``sensor_size``, ``T``) or frames."""
        stream = self.stream(record=record)
        if isinstance(events, np.ndarray) and events.dtype.names is not None:
            if T is None or sensor_size is None:
                raise ValueError("events need sensor_size (W, H, P) and T (the number of time bins)")
            stream.push_events_tonic(events, sensor_size, T, sort)
        else:
            stream.push_frames(events, T)
        out = stream.result()
        if self.device.type == "cpu" and self.strategy == "fast":
            fast.release(stream.state, self.workspace(stream.input_shape))
        return out

    def stream(self, record: bool = False) -> EventStream:
        from .stream import EventStream

        return EventStream(self, record)


def build_graph(model: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    graph = Graph()
    graph.add(InputNode("input", (), tuple(input_shape)))
    with torch.no_grad():
        graph.output = trace(model, "", graph, 0)
    return graph


def check_supported(model: nn.Module) -> None:
    """Trace the model on a probe input so that an unsupported layer fails at construction."""
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    if isinstance(first, nn.Linear):
        probe = (first.in_features, 1, 1)
    else:
        probe = (first.in_channels if first is not None else 1, 64, 64)
    try:
        build_graph(model, probe)
    except UnsupportedLayerError:
        raise
    except (ValueError, IndexError, ZeroDivisionError):
        pass  # a shape that does not fit the probe: checked again with the real input in run()
