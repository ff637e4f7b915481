"""The degradation study: depth sweeps and signal-propagation diagnosis."""

from .diagnose import diagnose, write_diagnosis
from .sweep import FAMILIES, SWEEP_RECIPE, arch_name, plot_sweep, sweep_depth

__all__ = ["FAMILIES", "SWEEP_RECIPE", "arch_name", "diagnose", "plot_sweep", "sweep_depth", "write_diagnosis"]
