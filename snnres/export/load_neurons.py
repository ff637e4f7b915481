"""NIR's neuron and delay nodes as modules that run ``[T, B, ...]`` sequences with carried state.

The discretisation (forward Euler with step ``dt``, one NIR step per snnres time step; the
current ``I`` of a node is the sum of its incoming edges at that step)::

    LI, LIF:          v[t] = v[t-1] + dt/tau (v_leak - v[t-1] + r I[t])
    I, IF:            v[t] = v[t-1] + dt r I[t]
    CubaLI, CubaLIF:  i[t] = i[t-1] + dt/tau_syn (w_in I[t] - i[t-1])
                      v[t] = v[t-1] + dt/tau_mem (v_leak - v[t-1] + r i[t])
    spiking (LIF, IF, CubaLIF):  z[t] = v[t] > v_threshold;  v[t] = v_reset where z[t]
    Threshold:        z[t] = I[t] > threshold
    Delay:            y[t] = I[t - round(delay / dt)]   (0 before the first step)

The output is ``z`` for spiking nodes and ``v`` for LI, I and CubaLI. A node snnres exported from
a neuron that fires on ``v >= v_threshold`` (``fire="ge"``, recorded in the node's metadata)
fires that way again, so the network comes back exactly. The state starts at rest:
``v = v_leak`` (``v_reset`` for IF, 0 for I), ``i = 0``. The current enters the membrane in the
same step (snnTorch's ``Synaptic`` and SpikingJelly's ``CUBALIFNode`` order). Every parameter may
differ across neurons: a full-shape array or a single value for the whole node. ``NIRNeuron`` is
the plain reference of these equations; a node whose parameters are one value each and map onto
snnres's LIF exactly runs as that LIF instead (``strategy="auto"``), with the same spikes.
"""

from __future__ import annotations

import math

import nir
import numpy as np
import torch
from torch import nn

from .errors import ExportError

#: node type -> (kind, its fields)
NEURON_FIELDS = {
    nir.LIF: ("LIF", ("tau", "r", "v_leak", "v_threshold", "v_reset")),
    nir.IF: ("IF", ("r", "v_threshold", "v_reset")),
    nir.LI: ("LI", ("tau", "r", "v_leak")),
    nir.I: ("I", ("r",)),
    nir.CubaLIF: ("CubaLIF", ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")),
    nir.CubaLI: ("CubaLI", ("tau_syn", "tau_mem", "r", "v_leak", "w_in")),
}
SPIKING = {"LIF", "IF", "CubaLIF"}


def parameter(name: str, node: nir.NIRNode, field: str, shape: tuple[int, ...]) -> np.ndarray:
    """``node.field`` as a float64 array of ``shape`` (a single value is broadcast), checked."""
    kind = type(node).__name__
    raw = getattr(node, field, None)
    if raw is None:
        raise ExportError(f"{kind} {name!r}: field {field} is missing")
    try:
        value = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ExportError(f"{kind} {name!r}: {field} is not numeric ({type(raw).__name__})") from None
    if value.size == 0:
        raise ExportError(f"{kind} {name!r}: {field} is empty (shape {value.shape}); expected {shape} or one value")
    if value.size != 1 and tuple(value.shape) != tuple(shape):
        raise ExportError(f"{kind} {name!r}: {field} has shape {tuple(value.shape)}, but the node gets inputs "
                          f"of shape {tuple(shape)}; expected that shape or a single value")
    if not np.all(np.isfinite(value)):
        bad = int((~np.isfinite(value)).sum())
        raise ExportError(f"{kind} {name!r}: {field} has {bad} NaN or infinite values of {value.size}")
    return np.broadcast_to(value.reshape(value.shape if value.size != 1 else ()), shape).copy()


def _rate(name: str, node, field: str, tau: np.ndarray, dt: float) -> np.ndarray:
    """``dt / tau``, which forward Euler needs in (0, 1] (a decay, not an overshoot)."""
    if np.any(tau <= 0):
        raise ExportError(f"{type(node).__name__} {name!r}: {field} must be > 0, got min {float(tau.min()):g}")
    if np.any(tau < dt * (1 - 1e-9)):
        raise ExportError(
            f"{type(node).__name__} {name!r}: {field} = {float(tau.min()):g} s is shorter than the step "
            f"dt = {dt:g} s (tau/dt = {float(tau.min()) / dt:.3g}); Euler steps would overshoot. The graph "
            "was probably written for another dt: pass from_nir(graph, dt=...) (Norse 1.1.0 writes tau "
            "multiplied by dt)"
        )
    return np.minimum(dt / tau, 1.0)


class NIRNeuron(nn.Module):
    """The reference: NIR's neuron equations (module docstring), per-neuron parameters, plain torch."""

    def __init__(self, kind: str, coefficients: dict[str, np.ndarray], dtype: torch.dtype, fire: str = "gt"):
        super().__init__()
        self.kind, self.fire = kind, fire
        for key, value in coefficients.items():
            self.register_buffer(key, torch.as_tensor(value, dtype=dtype))

    @property
    def spiking(self) -> bool:
        return self.kind in SPIKING

    def initial_state(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The resting state for one time step ``like [B, ...]``: ``(v,)`` or ``(i, v)`` (Cuba)."""
        rest = {"IF": "v_reset", "I": None}.get(self.kind, "v_leak")
        v = torch.zeros_like(like) if rest is None else getattr(self, rest).expand_as(like).clone()
        return (torch.zeros_like(like), v) if self.kind.startswith("Cuba") else (v,)

    def rest_output(self, like: torch.Tensor) -> torch.Tensor:
        """The output before the first step (what a delayed recurrent edge carries at t = 0)."""
        return torch.zeros_like(like) if self.spiking else self.initial_state(like)[-1]

    def run(self, x_seq: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        state = self.initial_state(x_seq[0]) if state is None else state
        outputs = []
        for x in x_seq:
            if self.kind.startswith("Cuba"):
                i = state[0] + self.syn_rate * (self.w_in * x - state[0])
                drive, v = i, state[1]
            else:
                drive, v = x, state[0]
            if self.kind in ("IF", "I"):
                v = v + self.gain * drive
            else:
                v = v + self.rate * (self.v_leak - v + self.r * drive)
            if self.spiking:
                spiked = v > self.v_threshold if self.fire == "gt" else v >= self.v_threshold
                outputs.append(spiked.to(x.dtype))
                v = torch.where(spiked, self.v_reset, v)
            else:
                outputs.append(v)
            state = (i, v) if self.kind.startswith("Cuba") else (v,)
        return torch.stack(outputs), state

    def extra_repr(self) -> str:
        return f"kind={self.kind}, neurons={tuple(getattr(self, 'r').shape)}, fire={self.fire}"


def neuron_parameters(name: str, node: nir.NIRNode, shape: tuple[int, ...]) -> tuple[str, dict[str, np.ndarray]]:
    """``(kind, {field: array of shape})`` of a NIR neuron node, every field checked."""
    kind, fields = NEURON_FIELDS[type(node)]
    return kind, {field: parameter(name, node, field, shape) for field in fields}


def neuron_coefficients(name: str, node: nir.NIRNode, kind: str, p: dict, dt: float) -> dict[str, np.ndarray]:
    """The per-step factors of the equations (module docstring) for ``NIRNeuron``."""
    c: dict[str, np.ndarray] = {"r": p["r"]}
    if kind in ("IF", "I"):
        c["gain"] = dt * p["r"]
    elif kind in ("LIF", "LI"):
        c["rate"], c["v_leak"] = _rate(name, node, "tau", p["tau"], dt), p["v_leak"]
    else:
        c["syn_rate"] = _rate(name, node, "tau_syn", p["tau_syn"], dt)
        c["rate"] = _rate(name, node, "tau_mem", p["tau_mem"], dt)
        c["v_leak"], c["w_in"] = p["v_leak"], p["w_in"]
    for field in ("v_threshold", "v_reset"):
        if field in p:
            c[field] = p[field]
    return c


def fire_mode(name: str, node: nir.NIRNode) -> str:
    """``"gt"`` (NIR's ``v > v_threshold``) unless snnres's metadata says ``"ge"``."""
    fire = (node.metadata or {}).get("fire", "gt")
    fire = fire.decode() if isinstance(fire, bytes) else str(fire)
    if fire not in ("gt", "ge"):
        raise ExportError(f"{type(node).__name__} {name!r}: metadata fire = {fire!r}; expected 'gt' or 'ge'")
    return fire


def snnres_lif(kind: str, p: dict[str, np.ndarray], dt: float, backend: str, fire: str):
    """The snnres ``LIF`` with these parameters when one exists (one value per field), else None.

    LIF: ``v + dt/tau (v_leak - v + r I)`` with ``v_leak = v_reset`` is snnres's
    ``tau_s = tau/dt`` LIF, ``decay_input`` for ``r = 1`` and not for ``r = tau_s``; IF with
    ``dt r = 1`` is ``tau = inf``, ``decay_input=False``; ``fire`` as the node says.
    """
    from ..neurons import LIF

    if kind not in ("LIF", "IF") or any(np.ptp(a) != 0 for a in p.values()):
        return None
    one = {key: float(a.reshape(-1)[0]) for key, a in p.items()}
    common = dict(v_threshold=one["v_threshold"], v_reset=one["v_reset"], fire=fire, backend=backend)
    if kind == "IF":
        return LIF(tau=math.inf, decay_input=False, **common) if math.isclose(dt * one["r"], 1.0, rel_tol=1e-9) else None
    tau = one["tau"] / dt
    if tau < 1.0 or not math.isclose(one["v_leak"], one["v_reset"], rel_tol=1e-9, abs_tol=1e-12):
        return None
    if math.isclose(one["r"], 1.0, rel_tol=1e-9):
        return LIF(tau=tau, decay_input=True, **common)
    if math.isclose(one["r"], tau, rel_tol=1e-6):
        return LIF(tau=one["r"], decay_input=False, **common)  # r is the exporter's exact tau
    return None


class Delay(nn.Module):
    """``y[t] = x[t - steps]`` per neuron (zeros before the first step); state: the last inputs."""

    def __init__(self, steps: np.ndarray):
        super().__init__()
        self.register_buffer("steps", torch.as_tensor(steps, dtype=torch.long))
        self.depth = int(steps.max()) if steps.size else 0

    def rest_output(self, like: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(like)

    def run(self, x_seq: torch.Tensor, state=None) -> tuple[torch.Tensor, torch.Tensor]:
        T = x_seq.shape[0]
        past = x_seq.new_zeros((self.depth, *x_seq.shape[1:])) if state is None else state
        history = torch.cat([past, x_seq])  # history[j] is the input of step j - depth
        at = torch.arange(T, device=x_seq.device).view(T, *([1] * (x_seq.ndim - 1))) + self.depth
        index = (at - self.steps).expand_as(x_seq)
        return history.gather(0, index), history[history.shape[0] - self.depth:]


def delay_steps(name: str, node: nir.Delay, shape: tuple[int, ...], dt: float, absorbed: bool) -> np.ndarray:
    """Delays in whole steps (``delay / dt``, which must be a whole number); one fewer if the
    delay node closes a cycle (its cut edge adds the other step)."""
    seconds = parameter(name, node, "delay", shape)
    steps = np.rint(seconds / dt)
    if np.any(seconds < 0) or not np.allclose(steps * dt, seconds, rtol=1e-6, atol=1e-12):
        raise ExportError(f"Delay {name!r}: delay must be whole, non-negative multiples of dt = {dt:g} s, "
                          f"got {np.unique(seconds)[:5]}")
    return (steps - 1 if absorbed else steps).astype(np.int64)


class Heaviside(nn.Module):
    """NIR's ``Threshold``: ``z = x > threshold``, elementwise, no state."""

    def __init__(self, threshold: np.ndarray, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)
