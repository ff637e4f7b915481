"""Event-driven simulator: run a trained SNN on event streams, touching only what events reach.

``EventSimulator(model).run(events, sensor_size, T)`` -> ``SimResult`` (logits, spikes per
layer, exact SOP and neuron-update counts). How it maps to neuromorphic hardware: ``README.md``.
"""

from ..layers.fold import fold_batchnorm
from .graph import UnsupportedLayerError
from .simulator import EventSimulator
from .state import SimResult

__all__ = ["EventSimulator", "SimResult", "UnsupportedLayerError", "fold_batchnorm"]
