"""Spiking neurons: LIF and MLF modules over swappable backends (torch, numba, cupy)."""

from .backends import available_backends, resolve_backend
from .functional import NeuronParams, lif, mlf, mlf_thresholds, run_neuron
from .modules import LIF, MLF
from .surrogate import SURROGATE_IDS, spike, surrogate_grad

__all__ = [
    "LIF", "MLF", "NeuronParams", "SURROGATE_IDS", "available_backends", "lif", "mlf",
    "mlf_thresholds", "resolve_backend", "run_neuron", "spike", "surrogate_grad",
]
