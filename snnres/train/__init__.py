"""Training: ``train(TrainConfig)``, evaluation, atomic checkpoints, DDP under torchrun."""

from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .config import RECIPES, TrainConfig, build_config
from .loop import TrainingDiverged, evaluate
from .run import train

__all__ = [
    "CheckpointError", "RECIPES", "TrainConfig", "TrainingDiverged", "build_config", "evaluate",
    "load_checkpoint", "read_checkpoint", "save_checkpoint", "train",
]
