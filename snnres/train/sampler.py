"""Data order and augmentation randomness that a resumed run reproduces exactly.

A run that stops at step ``k`` of an epoch and resumes must see the same remaining batches with the
same augmentation as an uninterrupted run. Two pieces make every batch a pure function of
``(seed, epoch, position in the epoch)``, whatever happened before it:

- :class:`ResumableSampler` is PyTorch's ``DistributedSampler`` (the permutation comes from
  ``seed + epoch`` alone; N processes together see what one sees) that can start ``skip`` samples
  into an epoch, and pairs each index with a seed drawn for its position in the epoch;
- :class:`SeededSamples` wraps the data set and runs each ``__getitem__`` under that seed (torch's
  CPU generator, restored afterwards; NumPy's and ``random``'s global streams), so augmentation draws
  the same numbers in the main process or in any DataLoader worker, before or after a resume. The
  training loop's own random state (dropout) is not touched by data loading at all.

A data set that draws from a generator object of its own (not the global ones) is not covered.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` yielding ``(index, sample_seed)``; ``set_epoch(e, skip)`` starts part-way."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0):
        super().__init__(dataset, num_replicas, rank, shuffle=shuffle, seed=seed)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Epoch ``epoch``'s order, without its first ``skip`` samples of this process."""
        super().set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())
        # One seed per position of the epoch (all processes), cut as DistributedSampler cuts indices.
        seeds = sample_seeds(self.seed, self.epoch, self.total_size)[self.rank:self.total_size:self.num_replicas]
        return iter(list(zip(indices, seeds.tolist()))[self.skip:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def sample_seeds(seed: int, epoch: int, count: int) -> np.ndarray:
    """``count`` independent 63-bit seeds for epoch ``epoch`` of a run seeded ``seed``."""
    words = np.random.SeedSequence([seed, epoch, 0x5EED]).generate_state(count, dtype=np.uint64)
    return (words >> np.uint64(1)).astype(np.int64)


class SeededSamples(Dataset):
    """``dataset[index]`` drawn under a given seed: ``wrapped[(index, seed)]``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):  # the wrapped data set's attributes (classes, sensor_size, ...)
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        generator = torch.default_generator  # its own state only: torch.manual_seed would also seed CUDA
        training_state = generator.get_state()
        generator.manual_seed(seed)
        # The global NumPy and random streams are only reseeded (saving and restoring them costs
        # ~0.4 ms a sample): the training loop draws from neither.
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            return self.dataset[index]
        finally:
            generator.set_state(training_state)
