"""Functional neurons with explicit state, for streaming: ``lif(x_seq, v) -> (spikes, v_last)``."""

from .neurons.functional import NeuronParams, lif, mlf, mlf_thresholds, run_neuron

__all__ = ["NeuronParams", "lif", "mlf", "mlf_thresholds", "run_neuron"]
