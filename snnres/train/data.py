"""The training run's data: checked names, the two loaders, the resumable order, the input record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from .config import TrainConfig
from .sampler import ResumableSampler, SeededSamples, sample_seeds
from .trained import data_record, evaluation_kwargs


def check_names(cfg: TrainConfig, model_args: dict[str, Any] | None = None) -> None:
    """Fail on a mistyped architecture, model option or data set before any data is read.

    The model is built on PyTorch's ``meta`` device (no memory, no initialisation cost).
    """
    from ..data import list_datasets, make_dataset
    from ..models import create_model

    if cfg.dataset not in list_datasets():
        make_dataset(cfg.dataset)  # raises the registry's error, with the close matches
    if model_args is None:
        try:
            with torch.device("meta"):
                create_model(cfg.arch, **cfg.model_kwargs)
        except (ValueError, TypeError):
            raise
        except Exception:  # an operation the meta device lacks: the real build will tell
            pass


def data_shape(dataset) -> tuple[int, int | None, int]:
    """``(in_channels, T or None, num_classes)`` read off a data set and its first sample."""
    sample = dataset[0][0]
    num_classes = getattr(dataset, "num_classes", None)
    if num_classes is None and hasattr(dataset, "classes"):
        num_classes = len(dataset.classes)
    if num_classes is None:
        raise ValueError(f"{type(dataset).__name__} does not say its number of classes (num_classes)")
    if sample.ndim == 4:  # [T, C, H, W] event frames
        return sample.shape[1], sample.shape[0], int(num_classes)
    return sample.shape[0], None, int(num_classes)


@dataclass
class RunData:
    train: DataLoader
    test: DataLoader
    sampler: ResumableSampler
    shape: dict[str, int]        # in_channels, T, num_classes: the model's arguments
    record: dict[str, Any]       # what checkpoints store about one input (``trained.data_record``)
    seed: int

    def start_epoch(self, epoch: int, steps_done: int) -> None:
        """Epoch ``epoch``'s order from step ``steps_done`` on; worker seeds fixed per epoch too."""
        self.sampler.set_epoch(epoch, skip=steps_done * self.train.batch_size)
        self.train.generator.manual_seed(int(sample_seeds(self.seed, epoch, 1)[0]))


def make_loaders(cfg: TrainConfig, dist_info) -> RunData:
    from ..data import make_dataset

    kwargs = dict(root=cfg.data_dir, T=cfg.T, download=cfg.download)
    train_set = make_dataset(cfg.dataset, train=True, **kwargs, **cfg.dataset_kwargs)
    test_set = make_dataset(cfg.dataset, train=False, **kwargs, **evaluation_kwargs(cfg.dataset_kwargs))
    in_channels, data_T, num_classes = data_shape(test_set)  # the test split: no augmentation to draw
    per_rank = cfg.batch_size // dist_info.world_size
    if per_rank < 1 or cfg.batch_size % dist_info.world_size:
        raise ValueError(f"--batch-size {cfg.batch_size} is the global batch: it must be a multiple of "
                         f"the {dist_info.world_size} processes")
    # One order for one process and for many: the permutation and each sample's augmentation seed
    # come from (seed, epoch, position) alone (sampler.py).
    sampler = ResumableSampler(train_set, dist_info.world_size, dist_info.rank, shuffle=True, seed=cfg.seed)
    if len(sampler) < per_rank:
        raise ValueError(f"{cfg.dataset} has {len(train_set)} training samples, fewer than one batch of "
                         f"{per_rank} per process: lower --batch-size")
    test_sampler = (DistributedSampler(test_set, dist_info.world_size, dist_info.rank, shuffle=False)
                    if dist_info.enabled else None)
    # Own generators: creating a loader's iterator draws from it, not from the training RNG.
    train_loader = DataLoader(SeededSamples(train_set), per_rank, sampler=sampler, num_workers=cfg.workers,
                              drop_last=True, generator=torch.Generator().manual_seed(cfg.seed))
    test_loader = DataLoader(test_set, per_rank, sampler=test_sampler, num_workers=cfg.workers,
                             generator=torch.Generator().manual_seed(cfg.seed))
    T = data_T if data_T is not None else (cfg.T or 4)
    record = data_record(cfg.dataset, test_set[0][0], in_channels, getattr(test_set, "sensor_size", None))
    return RunData(train_loader, test_loader, sampler, {"in_channels": in_channels, "T": T, "num_classes": num_classes},
                   record, cfg.seed)
