"""Training: ``train(TrainConfig)``, evaluation, atomic checkpoints, DDP under torchrun."""

from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .config import RECIPES, TrainConfig, build_config
from .loop import TrainingDiverged, evaluate
from .run import train
from .stop import Stopped
from .trained import TrainedCheckpoint, open_trained

__all__ = [
    "CheckpointError", "RECIPES", "TrainConfig", "TrainingDiverged", "build_config", "evaluate",
    "Stopped", "TrainedCheckpoint",
    "load_checkpoint", "open_trained", "read_checkpoint", "save_checkpoint", "train",
]
