"""Architectures by name: ``create_model("ms-resnet18", num_classes, T, in_channels)``, ``list_models()``."""

from . import ann, ds_resnet, ms_resnet, plain, sew_resnet, spiking_cnn  # noqa: F401  (they register themselves)
from .common import SpikingHead, SpikingNet
from .ds_resnet import DualSpikeBlock
from .ms_resnet import MembraneShortcutBlock
from .registry import create_model, list_models, register, register_family
from .sew_resnet import SpikeElementWiseBlock

__all__ = ["DualSpikeBlock", "MembraneShortcutBlock", "SpikeElementWiseBlock", "SpikingHead", "SpikingNet",
           "create_model", "list_models", "register", "register_family"]
