"""Pre-training configuration: one dataclass, per-data-set recipes, YAML and CLI overrides (as training)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..train.config import OptionRecord, build_config
from .model import MaskedModelingOptions


@dataclass
class PretrainConfig(OptionRecord):
    method: str = "mirl"                  # mirl | mae
    arch: str = "vit-tiny"
    dataset: str = "digits"
    data_dir: str = "datasets"
    epochs: int = 30
    batch_size: int = 64
    T: int | None = None                  # event data sets: frames per sample (each frame is an image)
    lr: float = 1e-3                      # peak; AdamW with betas (0.9, 0.95), cosine schedule (MAE's recipe)
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    mask_ratio: float = 0.75
    segments: int | None = None           # MIRL: None = the largest of 6, 4, 2 dividing the depth
    decoder_dim: int | None = None
    decoder_depth: int | None = None
    decoder_heads: int | None = None
    cross_attention: bool | None = None
    pred_weight_norm: bool = False
    norm_pix_loss: bool = True
    workers: int = 0
    seed: int = 0
    out: str = "runs/pretrain"
    resume: str | None = None
    device: str = "auto"
    download: bool = False
    max_steps_per_epoch: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)   # img_size defaults to the data's
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)

    kind = "pre-training"

    def options(self) -> MaskedModelingOptions:
        names = {f.name for f in dataclasses.fields(MaskedModelingOptions)}
        return MaskedModelingOptions(**{k: v for k, v in self.to_dict().items() if k in names})


PRETRAIN_RECIPES: dict[str, dict[str, Any]] = {
    # MAE's ImageNet recipe (He et al. 2022; MIRL keeps it): base lr 1.5e-4 per 256 images, 40 warm-up epochs
    "imagenet": dict(epochs=800, batch_size=4096, lr=1.5e-4 * 4096 / 256, warmup_epochs=40, weight_decay=0.05,
                     model_kwargs={"img_size": 224, "patch_size": 16}),
    # the CPU demonstration (README, MIRL section): 16x16 digits, 4x4 patches (16 patches, 4 visible)
    "digits": dict(epochs=30, batch_size=64, lr=1e-3, warmup_epochs=2, dataset_kwargs={"size": 16},
                   model_kwargs={"patch_size": 4}),
}


def build_pretrain_config(overrides: dict[str, Any], config_file: str | Path | None = None) -> PretrainConfig:
    """Defaults < the data set's recipe < the YAML file < explicit overrides (None = not given)."""
    return build_config(overrides, config_file, config_cls=PretrainConfig, recipes=PRETRAIN_RECIPES)
