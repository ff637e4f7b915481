"""``to_nir(model, input_shape, dt)``: an snnres model as a type-checked ``nir.NIRGraph``.

The model runs once on a random sample (``trace.Tracer``); every layer it calls becomes NIR
nodes (``layers.py``), BatchNorm is folded into the convolution or linear map before it,
shortcuts become several edges into one node, and each MLF level becomes its own ``nir.LIF``.
One NIR time step is one model time step; the model's final mean over time is not a NIR node
and is recorded in ``metadata["readout"]``.
"""

from __future__ import annotations

import itertools
import math

import nir
import numpy as np
import torch
from torch import nn

from .errors import ExportError
from .graph import GraphBuilder, Value
from .layers import converter_for
from .trace import Tracer

INPUT_LAYOUTS = {"static": ("B",), "frames": ("B", "T"), "time-first": ("T", "B")}


def spike_condition(fire_modes: set[str]) -> str:
    """The metadata line on how the network's spike test relates to NIR's ``v > v_threshold``."""
    if not fire_modes or fire_modes == {"gt"}:
        return "snnres fires on H > V_th (fire='gt'), as NIR's v > v_threshold: exact"
    return ("some snnres neurons fire on H >= V_th (fire='ge'), NIR on v > v_threshold: equal except on "
            "exact ties (each LIF node's metadata records its fire mode)")


def to_nir(model: nn.Module, input_shape, dt: float = 1e-4, *, allow_lossy: bool = False,
           T: int | None = None, input_layout: str = "static") -> nir.NIRGraph:
    """Export ``model`` to NIR.

    ``input_shape``: one sample at one time step, e.g. ``(2, 34, 34)``. ``input_layout``: how the
    model takes its input: ``"static"`` ``[B, *input_shape]`` (direct encoding, repeated over
    time by the model), ``"frames"`` ``[B, T, ...]`` or ``"time-first"`` ``[T, B, ...]``; the
    last two need ``T`` (default: ``model.T``). ``dt`` only scales the NIR time constants
    (``tau = dt * tau_snnres``). Soft-reset neurons raise ``ExportError`` unless
    ``allow_lossy=True``, which exports them with a hard reset to 0, warns, and records it.
    """
    from .. import __version__

    input_shape = tuple(int(s) for s in input_shape)
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be finite and > 0 (the NIR time step in seconds), got {dt}")
    if input_layout not in INPUT_LAYOUTS:
        raise ValueError(f"input_layout must be one of {sorted(INPUT_LAYOUTS)}, got {input_layout!r}")
    T = T if T is not None else getattr(model, "T", None)
    if input_layout != "static" and not isinstance(T, int):
        raise ValueError(f"input_layout={input_layout!r} needs T (the model has no int attribute T)")
    first = next((t for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    device = first.device if first is not None else torch.device("cpu")
    B = 3 if T == 2 else 2  # a batch size unlike T, so reshapes of [T, B] are unambiguous
    lead = INPUT_LAYOUTS[input_layout]
    sizes = {"B": B, "T": T}
    x = torch.rand(*(sizes[d] for d in lead), *input_shape, dtype=dtype, device=device)

    builder = GraphBuilder(np.dtype(str(dtype).removeprefix("torch.")))
    input_name = builder.add("input", nir.Input(input_type=np.array(input_shape)))
    tracer = Tracer(builder, converter_for, T, B, {"dt": float(dt), "allow_lossy": allow_lossy})
    tracer.bind(x, Value((input_name,), input_shape, lead))
    handles = tracer.attach(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), tracer:
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    value = tracer.value_of(out) if isinstance(out, torch.Tensor) else None
    if value is None:
        raise ExportError(
            f"the model returned {type(out).__name__} that was not computed from its input by "
            "layers the exporter could follow; to_nir needs a model returning one tensor"
        )
    if value.sources == (input_name,) and len(builder.nodes) == 1:
        raise ExportError("the model's output is its input: there is nothing to export")
    if len(value.sources) > 1:  # edges into an Output are separate outputs, so sum them first
        ones = np.ones(value.shape, dtype=builder.dtype)
        value = value.with_(sources=(builder.add("output_sum", nir.Scale(scale=ones), value),))
    output_name = builder.add("output", nir.Output(output_type=np.array(value.shape)), value)
    builder.prune(output_name)

    T = tracer.sizes["T"]
    if "T" in value.lead:
        readout = "none: one output per time step"
    elif value.readout == "mean":
        readout = "mean over time steps of the output"
    else:
        readout = "none: the output does not depend on time"
    lossy = tracer.notes.get("lossy", [])
    metadata = {
        "source": "snnres",
        "snnres_version": __version__,
        "model": type(model).__name__,
        "dt": float(dt),
        "T": int(T) if T is not None else 0,
        "input_layout": input_layout,
        "readout": readout,
        "reset": ", ".join(sorted(tracer.notes.get("reset", {"no neurons"}))),
        "lossy": bool(lossy),
        "lossy_details": "; ".join(lossy),
        "neuron_mapping": (
            "snnres H = beta V + (1-beta) V_reset + g X, beta = 1 - 1/tau, g = 1/tau (decay_input) "
            "or 1 -> nir.LIF tau = dt*tau = dt/(1-beta), r = g*tau, v_leak = v_reset; tau = inf "
            "(integrate-and-fire, H = V + X) -> nir.IF r = 1/dt; an MLF neuron is one LIF per level, "
            "their spikes summed by the edges leaving them"
        ),
        "spike_condition": spike_condition(tracer.notes.get("fire", set())),
        "initial_state": "v = v_reset (= v_leak) at the first time step",
    }
    _check_finite(builder.nodes)
    graph = nir.NIRGraph(nodes=builder.nodes, edges=builder.edges, metadata=metadata, type_check=True)
    graph.validate_structure()
    return graph


def _check_finite(nodes: dict[str, nir.NIRNode]) -> None:
    """``ExportError`` naming the node, its layer and the field if any parameter is NaN or inf."""
    for name, node in nodes.items():
        for field, x in vars(node).items():
            if isinstance(x, np.ndarray) and x.dtype.kind == "f" and not np.isfinite(x).all():
                layer = (node.metadata or {}).get("snnres_layer", name)
                raise ExportError(
                    f"NIR node {name!r} (layer {layer!r}): {field} has {int((~np.isfinite(x)).sum())} "
                    f"non-finite values of {x.size}; check the layer's weights and BatchNorm statistics"
                )
