"""Thin ``nn.Module`` wrappers around the functional neurons (equations: ``functional.py``).

The modules hold parameters only, never state: each ``forward`` starts from rest, so there is
no ``reset_net`` to forget. For streaming with carried state use ``snnres.functional``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .functional import NeuronParams, lif_state_as_levels, mlf_thresholds, run_neuron, run_neuron_input_grad


class SpikingNeuron(nn.Module):
    """The base of every spiking neuron layer (LIF, MLF): its dynamics in ``params``
    (a ``NeuronParams``), ``tau`` (a float, or a tensor when learned), dispatch to a backend.

    Other packages find neuron layers with ``isinstance(m, SpikingNeuron)`` and read ``params``
    and ``tau``; a new neuron kind subclasses it."""

    def __init__(self, params: NeuronParams, tau: float, learn_tau: bool, backend: str, check_finite: bool):
        super().__init__()
        if learn_tau and not tau > 1.0:
            raise ValueError(f"learn_tau=True needs an initial tau > 1 (tau = 1/sigmoid(w)), got {tau}")
        if not tau >= 1.0:
            raise ValueError(f"tau must be >= 1, got {tau}")
        self.params = params
        self.backend = backend
        self.check_finite = check_finite
        self.learn_tau = learn_tau
        self._tau = float(tau)
        # PLIF (Fang et al., 2021): 1/tau = sigmoid(w), so tau stays > 1 whatever w becomes.
        self.tau_logit = nn.Parameter(torch.tensor(-math.log(tau - 1.0))) if learn_tau else None

    @property
    def tau(self) -> float | torch.Tensor:
        if self.tau_logit is None:
            return self._tau
        return 1.0 / torch.sigmoid(self.tau_logit)

    def run(self, x_seq: torch.Tensor, v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(spikes, v_last)`` from state ``v`` ([levels, ...], None = rest)."""
        return run_neuron(x_seq, v, self.tau, self.params, self.backend, self.check_finite)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """``x_seq [T, ...]`` -> spikes ``[T, ...]``, same dtype and device, starting from rest."""
        return self.run(x_seq)[0]

    @property
    def max_count(self) -> int:
        """The largest value a step's output takes: the number of levels (spikes are 0..levels)."""
        return self.params.levels

    def input_grad(self, x_seq: torch.Tensor, grad_spikes: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """The backward of ``self(x_seq)`` from ``x_seq`` alone: ``(dL/dx_seq, dL/dp for p in
        self.parameters())`` given ``dL/dspikes``. Layers that keep a neuron's input (or recompute
        it) instead of its autograd graph call this in their backward."""
        tau = self.tau
        if self.tau_logit is None:
            return run_neuron_input_grad(x_seq, grad_spikes, tau, self.params, self.backend)[0], ()
        with torch.enable_grad():
            tau = self.tau
            grad_x, grad_tau = run_neuron_input_grad(x_seq, grad_spikes, tau, self.params, self.backend)
            if grad_tau is None:
                return grad_x, (None,)
            return grad_x, torch.autograd.grad(tau, self.tau_logit, grad_tau)

    def extra_repr(self) -> str:
        p = self.params
        tau = f"learned (init {self._tau:.4g})" if self.learn_tau else f"{self._tau:.4g}"
        return (
            f"tau={tau}, thresholds={p.thresholds}, v_reset={p.v_reset}, decay_input={p.decay_input}, "
            f"detach_reset={p.detach_reset}, surrogate={p.surrogate}(alpha={p.alpha}), fire={p.fire}, "
            f"backend={self.backend}"
        )


class LIF(SpikingNeuron):
    """Multi-step leaky integrate-and-fire neuron, ``[T, ...] -> spikes [T, ...]``.

    MS-ResNet's neuron: ``LIF(tau=4/3, decay_input=False, v_threshold=0.5, v_reset=0.0,
    detach_reset=True, surrogate="rectangle", alpha=1.0, fire="gt")``. ``fire``: "ge" spikes on
    ``H >= V_th`` (SpikingJelly), "gt" on ``H > V_th`` (the MS-ResNet / MLF authors' code, NIR).
    ``learn_tau=True`` makes tau a parameter (PLIF). ``backend``: "auto", "torch", "numba" or "cupy".
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        decay_input: bool = True,
        detach_reset: bool = False,
        surrogate: str = "sigmoid",
        alpha: float = 4.0,
        backend: str = "auto",
        learn_tau: bool = False,
        check_finite: bool = False,
        fire: str = "ge",
    ):
        params = NeuronParams((float(v_threshold),), v_reset, decay_input, detach_reset, surrogate, alpha, fire)
        super().__init__(params, tau, learn_tau, backend, check_finite)

    @property
    def v_threshold(self) -> float:
        return self.params.thresholds[0]

    def run(self, x_seq: torch.Tensor, v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(spikes, v_last)`` with the LIF state shaped like one time step of ``x_seq``."""
        spikes, v_last = super().run(x_seq, lif_state_as_levels(x_seq, v))
        return spikes, v_last[0]


class MLF(SpikingNeuron):
    """Multi-level firing neuron (DS-ResNet): ``levels`` LIF membranes on one input, spikes summed.

    Defaults are the authors': thresholds 0.6 / 1.6 / 2.6, ``u = 0.25 u (1 - s) + x``, hard reset
    not detached, a box surrogate of width 1 around each level's threshold, and spikes on
    ``u > V_th`` (``fire="gt"``, the authors' ``torch.gt``; "ge" for SpikingJelly's Heaviside).
    """

    def __init__(
        self,
        levels: int = 3,
        tau: float = 4.0 / 3.0,
        v_threshold: float = 0.6,
        spacing: float = 1.0,
        thresholds: Sequence[float] | None = None,
        v_reset: float | None = 0.0,
        decay_input: bool = False,
        detach_reset: bool = False,
        surrogate: str = "rectangle",
        alpha: float = 1.0,
        backend: str = "auto",
        learn_tau: bool = False,
        check_finite: bool = False,
        fire: str = "gt",
    ):
        ths = tuple(float(t) for t in thresholds) if thresholds is not None else mlf_thresholds(
            levels, v_threshold, spacing
        )
        params = NeuronParams(ths, v_reset, decay_input, detach_reset, surrogate, alpha, fire)
        super().__init__(params, tau, learn_tau, backend, check_finite)

    @property
    def levels(self) -> int:
        return self.params.levels
