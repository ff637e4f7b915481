"""Masked image pre-training of the ``vit-*`` models: MAE and MIRL (masked image residual learning)."""

from .config import PRETRAIN_RECIPES, PretrainConfig, build_pretrain_config
from .losses import mae_loss, masked_mse, mirl_loss, mirl_pairs
from .masking import Masking, patch_targets, patchify, random_masking
from .model import METHODS, MaskedImageModel, MaskedModelingOptions, PretrainOutput, default_segments
from .run import load_pretrainer, pretrain, validate

__all__ = [
    "PRETRAIN_RECIPES", "PretrainConfig", "build_pretrain_config", "load_pretrainer", "pretrain", "validate",
    "METHODS", "MaskedImageModel", "MaskedModelingOptions", "Masking", "PretrainOutput", "default_segments",
    "mae_loss", "masked_mse", "mirl_loss", "mirl_pairs", "patch_targets", "patchify", "random_masking",
]
