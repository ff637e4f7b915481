"""Spiking neurons: LIF and MLF modules over swappable backends (torch, numba, cupy)."""

from .backends import available_backends, resolve_backend
from .functional import FIRE_MODES, NeuronParams, lif, mlf, mlf_thresholds, run_neuron
from .modules import LIF, MLF, SpikingNeuron
from .surrogate import SURROGATE_IDS, spike, surrogate_grad

__all__ = [
    "FIRE_MODES", "LIF", "MLF", "NeuronParams", "SURROGATE_IDS", "SpikingNeuron", "available_backends", "lif",
    "mlf", "mlf_thresholds", "resolve_backend", "run_neuron", "spike", "surrogate_grad",
]
