"""One table of data set builders and the entry point `make_dataset`."""

from __future__ import annotations

import difflib
from dataclasses import fields
from types import MappingProxyType

import torch

from .digits import make_digits
from .frames import make_cifar, make_imagenet
from .synthetic import SyntheticDVS, SyntheticDVSConfig
from .tonic_sets import SPECS, make_tonic_dataset


def make_synthetic_dvs(name, root, train, T, download, augment: bool = False, **kwargs):
    known = {f.name for f in fields(SyntheticDVSConfig)}
    unknown = sorted(set(kwargs) - known - {"T"})
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {unknown}; accepted: {sorted(known | {'augment'})}")
    if T is not None:
        kwargs["T"] = T
    return SyntheticDVS(SyntheticDVSConfig(**kwargs), train=train, augment=augment)


# name -> builder(name, root, train, T, download, **kwargs); read-only.
BUILDERS = MappingProxyType(
    {
        "synthetic-dvs": make_synthetic_dvs,
        **{name: make_tonic_dataset for name in SPECS},
        "cifar10": make_cifar,
        "cifar100": make_cifar,
        "imagenet": make_imagenet,
        "digits": make_digits,
    }
)


def list_datasets() -> list[str]:
    return sorted(BUILDERS)


def make_dataset(name: str, root="datasets", train: bool = True, T: int | None = None, download: bool = False, **kwargs) -> torch.utils.data.Dataset:
    """Build data set `name`; items are `(tensor, int label)`.

    Event data sets give float32 frames `[T, C, H, W]` (Tonic's `ToFrame(n_time_bins=T)`, C = 2
    polarities; SHD: C = H = 1) and expose `events(i)` and `sensor_size`; frame data sets give
    images `[C, H, W]`. `T=None` takes the data set's default. Options (`augment`, `cache`,
    `skip_corrupt`, `downsample`, `num_samples`, `size`, `seed`, ...) depend on the data set.
    """
    builder = BUILDERS.get(name)
    if builder is None:
        close = difflib.get_close_matches(str(name), list(BUILDERS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown data set {name!r}.{hint} Known: {', '.join(list_datasets())}")
    return builder(name, root, train, T, download, **kwargs)
