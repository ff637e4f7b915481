"""Multi-step LIF and MLF neurons as pure functions: ``(x_seq, state, params) -> (spikes, state)``.

The equations (written once, here). For every level ``k`` of a neuron (a LIF has one level, an MLF
neuron ``K``), with time constant ``tau``, threshold ``V_th,k`` and reset potential ``V_reset``
(``V_reset = 0`` inside the charge when the reset is soft)::

    decay_input=True:   H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau
    decay_input=False:  H[t] = V[t-1] - (V[t-1] - V_reset) / tau + X[t]
    S[t] = H[t] >= V_th,k   (fire="ge")    or    S[t] = H[t] > V_th,k   (fire="gt")
                                   (backward: the surrogate's g'(H[t] - V_th,k) either way)
    hard reset:         V[t] = S[t] * V_reset + (1 - S[t]) * H[t]
    soft reset:         V[t] = H[t] - S[t] * V_th,k        (v_reset=None)

These are SpikingJelly's multi-step ``LIFNode`` equations, written in the same order of floating
point operations so that spikes agree bit for bit. ``fire`` decides a tie ``H[t] = V_th``:
SpikingJelly's Heaviside fires on it (``"ge"``, the default); the MS-ResNet and MLF authors' code
does not (``"gt"``: ``u.gt(Vth)``), and NIR's LIF fires on ``v > v_threshold`` too. Exact ties
are rare but do occur with trained weights. ``detach_reset`` stops the gradient through
``S[t]`` in the reset. The state starts at rest (``V[-1] = V_reset``, or 0 for a soft reset)
unless a state is passed in, so a stream can be fed in chunks.

An MLF neuron (Feng et al., IJCAI 2022) has ``K`` levels, each with its own membrane and
threshold, all fed the same input; its output is the sum of the level spikes (0..K). MS-ResNet's
neuron ``u = 0.25 u (1 - s) + x`` is ``tau=4/3, decay_input=False, v_reset=0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .backends import get_backend
from .surrogate import surrogate_id


@dataclass(frozen=True)
class NeuronParams:
    """Everything but ``tau`` that fixes a neuron's dynamics (hashable: kernels are cached by it)."""

    thresholds: tuple[float, ...] = (1.0,)
    v_reset: float | None = 0.0
    decay_input: bool = True
    detach_reset: bool = False
    surrogate: str = "sigmoid"
    alpha: float = 4.0
    fire: str = "ge"                 # "ge": spike on H >= V_th (SpikingJelly); "gt": on H > V_th

    def __post_init__(self) -> None:
        surrogate_id(self.surrogate)
        check_fire(self.fire)
        if not self.thresholds:
            raise ValueError("a neuron needs at least one threshold (levels >= 1)")
        if not self.alpha > 0:
            raise ValueError(f"surrogate alpha must be > 0, got {self.alpha}")

    @property
    def levels(self) -> int:
        return len(self.thresholds)

    @property
    def strict(self) -> bool:
        """True when a tie ``H = V_th`` does not fire (``fire="gt"``)."""
        return self.fire == "gt"

    @property
    def rest(self) -> float:
        """The resting potential the state starts from."""
        return 0.0 if self.v_reset is None else float(self.v_reset)


FIRE_MODES = ("ge", "gt")


def check_fire(fire: str) -> None:
    """A clear error unless ``fire`` is "ge" (spike on ``H >= V_th``) or "gt" (on ``H > V_th``)."""
    if fire not in FIRE_MODES:
        raise ValueError(
            f"fire={fire!r}: expected 'ge' (spike when H >= V_th, SpikingJelly's convention) or 'gt' "
            "(spike when H > V_th, the MS-ResNet / MLF authors' and NIR's)"
        )


def mlf_thresholds(levels: int = 3, v_threshold: float = 0.6, spacing: float = 1.0) -> tuple[float, ...]:
    """MLF level thresholds ``V_th + (k - 1) * spacing`` for k = 1..levels (0.6, 1.6, 2.6)."""
    if levels < 1:
        raise ValueError(f"MLF needs levels >= 1, got {levels}")
    return tuple(float(v_threshold + k * spacing) for k in range(levels))


def _check_tau(tau: float | torch.Tensor) -> None:
    value = float(tau.detach()) if isinstance(tau, torch.Tensor) else float(tau)
    if not value >= 1.0:
        raise ValueError(
            f"tau must be >= 1 (each step closes 1/tau of the gap to V_reset), got {value}"
        )


def _check_input(x_seq: torch.Tensor, check_finite: bool) -> None:
    if not isinstance(x_seq, torch.Tensor):
        raise TypeError(f"x_seq must be a torch.Tensor of shape [T, ...], got {type(x_seq).__name__}")
    if x_seq.ndim == 0:
        raise ValueError("x_seq must have shape [T, ...] (time first); got a 0-d tensor")
    if x_seq.shape[0] == 0:
        raise ValueError(f"x_seq has T=0 time steps (shape {tuple(x_seq.shape)}); expected [T>=1, ...]")
    if not x_seq.is_floating_point():
        raise ValueError(
            f"x_seq must be a floating point tensor (float32, float16, bfloat16, float64), "
            f"got {x_seq.dtype}; convert it with x_seq.float()"
        )
    if check_finite and not bool(torch.isfinite(x_seq).all()):
        raise ValueError("x_seq contains NaN or inf; check the layer feeding this neuron")


def lif_state_as_levels(x_seq: torch.Tensor, v: torch.Tensor | None) -> torch.Tensor | None:
    """A LIF state ``[...]`` (one time step of ``x_seq``) as the one-level state ``[1, ...]``."""
    if v is None:
        return None
    if isinstance(x_seq, torch.Tensor) and x_seq.ndim >= 1 and tuple(v.shape) != tuple(x_seq.shape[1:]):
        raise ValueError(
            f"state v must have shape {tuple(x_seq.shape[1:])} (one time step of x_seq), got {tuple(v.shape)}"
        )
    return v.unsqueeze(0)


def run_neuron(
    x_seq: torch.Tensor,
    v: torch.Tensor | None,
    tau: float | torch.Tensor,
    params: NeuronParams,
    backend: str = "auto",
    check_finite: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``params.levels`` levels over ``x_seq [T, ...]``; state ``v`` is ``[levels, ...]``.

    Returns the summed spikes ``[T, ...]`` (dtype of ``x_seq``) and the last state ``[levels, ...]``.
    A backend's ``run`` gets ``v=None`` for the resting state.
    """
    _check_input(x_seq, check_finite)
    _check_tau(tau)
    state_shape = (params.levels, *x_seq.shape[1:])
    if v is None:
        pass  # the backend starts from rest without materialising (or saving) a state tensor
    elif tuple(v.shape) != state_shape:
        raise ValueError(f"state v must have shape {state_shape}, got {tuple(v.shape)}")
    else:
        v = v.to(device=x_seq.device, dtype=x_seq.dtype)
    return get_backend(backend, x_seq).run(x_seq, v, tau, params)


def run_neuron_input_grad(
    x_seq: torch.Tensor,
    grad_spikes: torch.Tensor,
    tau: float | torch.Tensor,
    params: NeuronParams,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The backward of a run from rest, from its input alone: ``(dL/dx_seq, dL/dtau)``.

    ``grad_spikes`` is ``dL/dspikes`` of ``run_neuron(x_seq, None, tau, params)``. The fused
    backends recompute the membrane potentials from ``x_seq`` inside their backward kernel; the
    torch reference runs again under autograd. ``dL/dtau`` is a tensor like ``tau`` when ``tau`` is
    a tensor that requires grad, else None.
    """
    need_tau = isinstance(tau, torch.Tensor) and tau.requires_grad
    grad_x, grad_tau = get_backend(backend, x_seq).input_grad(x_seq, grad_spikes, tau, params, need_tau)
    if grad_tau is not None:
        grad_tau = torch.full_like(tau.detach(), float(grad_tau))
    return grad_x, grad_tau


def lif(
    x_seq: torch.Tensor,
    v: torch.Tensor | None = None,
    *,
    tau: float | torch.Tensor = 2.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = False,
    surrogate: str = "sigmoid",
    alpha: float = 4.0,
    fire: str = "ge",
    backend: str = "auto",
    check_finite: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-step LIF (equations in the module docstring).

    ``x_seq``: ``[T, ...]``; ``v``: state ``x_seq.shape[1:]`` or None for rest.
    Returns ``(spikes [T, ...], v_last [...])``; ``v_last`` is the state to pass to the next chunk.
    """
    params = NeuronParams((float(v_threshold),), v_reset, decay_input, detach_reset, surrogate, alpha, fire)
    spikes, v_last = run_neuron(x_seq, lif_state_as_levels(x_seq, v), tau, params, backend, check_finite)
    return spikes, v_last[0]


def mlf(
    x_seq: torch.Tensor,
    v: torch.Tensor | None = None,
    *,
    levels: int = 3,
    v_threshold: float = 0.6,
    spacing: float = 1.0,
    thresholds: Sequence[float] | None = None,
    tau: float | torch.Tensor = 4.0 / 3.0,
    v_reset: float | None = 0.0,
    decay_input: bool = False,
    detach_reset: bool = False,
    surrogate: str = "rectangle",
    alpha: float = 1.0,
    fire: str = "gt",
    backend: str = "auto",
    check_finite: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-step multi-level firing neuron: ``levels`` LIF membranes fed the same input.

    Thresholds are ``thresholds`` if given, else ``v_threshold + k * spacing`` (0.6, 1.6, 2.6).
    Defaults are the DS-ResNet authors' (``u = 0.25 u (1 - s) + x``, reset not detached,
    box surrogate of width 1 per level, spike on ``u > V_th``). ``v``: state ``[levels, *x_seq.shape[1:]]`` or None.
    Returns ``(spike counts [T, ...] in 0..levels, v_last [levels, ...])``.
    """
    ths = tuple(float(t) for t in thresholds) if thresholds is not None else mlf_thresholds(
        levels, v_threshold, spacing
    )
    params = NeuronParams(ths, v_reset, decay_input, detach_reset, surrogate, alpha, fire)
    return run_neuron(x_seq, v, tau, params, backend, check_finite)
