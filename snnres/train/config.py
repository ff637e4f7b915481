"""Training configuration: one dataclass, per-data-set recipe defaults, YAML and CLI overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .recipes import paper_recipe


class OptionRecord:
    """A run's options as a dataclass that reads and writes plain dicts (config.yaml, checkpoints)."""

    kind = "training"  # in messages

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.kind} option(s) {unknown}; known options: {sorted(known)}")
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        """Raise ``ValueError`` for an option outside its allowed values (before anything runs)."""


@dataclass
class TrainConfig(OptionRecord):
    arch: str = "ms-resnet18"
    dataset: str = "synthetic-dvs"
    data_dir: str = "datasets"
    epochs: int = 6
    batch_size: int = 32
    T: int | None = None                  # time steps; None: the data set's default (events) or 4
    lr: float = 0.1
    optimizer: str = "sgd"                # sgd | adamw
    momentum: float = 0.9
    weight_decay: float = 1e-4
    weight_decay_on: str = "weights"      # weights: conv/linear weights only (snnres); all: every parameter
    lr_schedule: str = "cosine"           # cosine: per step with warm-up (snnres); cosine-epoch | step: per epoch
    lr_step_epochs: int = 40              # step: multiply the lr by lr_step_gamma every lr_step_epochs epochs
    lr_step_gamma: float = 0.1
    lr_epoch_offset: int = 0              # per-epoch schedules start at this epoch's rate
    recipe: str | None = None             # a paper's recipe by name (train/recipes.py); the options above win
    label_smoothing: float = 0.0
    warmup_epochs: float = 0.0
    amp: bool = False                     # mixed precision on CUDA
    amp_dtype: str = "bf16"               # bf16 | fp16 (fp16 uses a grad scaler)
    compile: bool = False                 # torch.compile the model
    sync_bn: bool = False                 # SyncBatchNorm under DDP
    workers: int = 0
    seed: int = 0
    out: str = "runs/default"
    resume: str | None = None
    init_from: str | None = None          # start from a checkpoint's weights (e.g. a pre-trained encoder)
    device: str = "auto"                  # auto | cpu | cuda | cuda:N
    download: bool = False
    max_steps_per_epoch: int | None = None  # cap the steps of an epoch (smoke runs, tests)
    save_every: int | None = None         # also write last.pt every N steps (a crash loses less)
    on_nonfinite: str = "stop"            # stop | skip: a step whose loss or gradients are NaN/inf
    spike_table: str = "stages"           # stages | layers: the spike summary at the end
    memory: str = "default"               # default | lean | reference: what the backward keeps (layers.memory_plan)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        from ..layers.memory_plan import MEMORY_MODES

        choices = {"optimizer": ("sgd", "adamw"), "amp_dtype": ("bf16", "fp16"), "on_nonfinite": ("stop", "skip"),
                   "spike_table": ("stages", "layers"), "memory": MEMORY_MODES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        for name in ("epochs", "batch_size", "save_every", "max_steps_per_epoch", "T"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"--{name.replace('_', '-')} {value!r}: expected a positive whole number")


# The papers' recipes, applied when the user does not set the option (see shared REFERENCES).
RECIPES: dict[str, dict[str, Any]] = {
    # measured: ms-resnet18 reaches ~97% test accuracy in 8 epochs (a few minutes on 2 CPU cores)
    "synthetic-dvs": dict(lr=0.05, epochs=8, batch_size=32, weight_decay=5e-4,
                          dataset_kwargs={"num_samples": 1024, "augment": True}),
    "imagenet": dict(lr=0.1, epochs=125, batch_size=256, weight_decay=1e-5, label_smoothing=0.1,
                     warmup_epochs=0, T=5),
    "cifar10": dict(lr=0.1, epochs=200, batch_size=128, weight_decay=1e-4, T=4),
    "cifar100": dict(lr=0.1, epochs=200, batch_size=128, weight_decay=1e-4, T=4),
    "cifar10-dvs": dict(lr=0.1, epochs=200, batch_size=32, weight_decay=1e-4, T=10),
    "dvs-gesture": dict(lr=0.1, epochs=200, batch_size=16, weight_decay=1e-4, T=40),
    "nmnist": dict(lr=0.05, epochs=50, batch_size=64, weight_decay=1e-4, T=10),
    # the ViT fine-tuning demonstration (README, MIRL section): 16x16 images, 4x4 patches
    "digits": dict(optimizer="adamw", lr=1e-3, epochs=10, batch_size=32, weight_decay=0.05, label_smoothing=0.1,
                   warmup_epochs=1, dataset_kwargs={"size": 16}),
}


def build_config(overrides: dict[str, Any], config_file: str | Path | None = None, config_cls: type = TrainConfig,
                 recipes: dict[str, dict[str, Any]] = RECIPES):
    """Defaults < the data set's recipe < a paper's recipe (``recipe``, ``recipes.PAPER_RECIPES``) <
    the YAML file < explicit overrides (None = not given).

    ``config_cls`` and ``recipes``: another run's dataclass and recipes (``snnres.pretrain``)."""
    values: dict[str, Any] = {}
    from_file: dict[str, Any] = {}
    if config_file is not None:
        text = Path(config_file).read_text()
        from_file = yaml.safe_load(text) or {}
        if not isinstance(from_file, dict):
            raise ValueError(f"{config_file}: expected a mapping of option: value, got {type(from_file).__name__}")
    given = {k: v for k, v in overrides.items() if v is not None}
    named = given.get("recipe", from_file.get("recipe"))
    paper = paper_recipe(named) if named else {}
    dataset = given.get("dataset", from_file.get("dataset", paper.get("dataset", config_cls.dataset)))
    for layer in (recipes.get(dataset, {}), paper, from_file, given):
        for key, value in layer.items():
            if key in ("model_kwargs", "dataset_kwargs") and isinstance(value, dict):
                value = {**values.get(key, {}), **value}  # options merge key by key
            values[key] = value
    return config_cls.from_dict(values)
