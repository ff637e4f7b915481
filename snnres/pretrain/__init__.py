"""Masked image pre-training of the ``vit-*`` models: MAE and MIRL (masked image residual learning)."""

from .losses import mae_loss, masked_mse, mirl_loss, mirl_pairs
from .masking import Masking, patch_targets, patchify, random_masking
from .model import METHODS, MaskedImageModel, MaskedModelingOptions, PretrainOutput, default_segments

__all__ = [
    "METHODS", "MaskedImageModel", "MaskedModelingOptions", "Masking", "PretrainOutput", "default_segments",
    "mae_loss", "masked_mse", "mirl_loss", "mirl_pairs", "patch_targets", "patchify", "random_masking",
]
