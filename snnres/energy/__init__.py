"""Energy: spikes per neuron, synaptic operations, and energy against the equivalent ANN."""

from .constants import PRESETS, EnergyModel, energy_model
from .counting import count_layer, fan_out_map, is_spike_tensor
from .report import EnergyReport, build_report, energy_report

__all__ = ["EnergyModel", "EnergyReport", "PRESETS", "build_report", "count_layer", "energy_model", "energy_report",
           "fan_out_map", "is_spike_tensor"]
