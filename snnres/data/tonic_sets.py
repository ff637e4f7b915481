"""Tonic event data sets: N-MNIST, DVS128 Gesture, CIFAR10-DVS, N-Caltech101, SHD.

Tonic's own existence check wants the downloaded archive next to the extracted files and a
minimum file count; people who unpack by hand have neither. Our subclasses (same class names,
so Tonic's folder `root/<ClassName>/` is unchanged) let the extracted files decide, and turn a
failed download into a plain `DownloadError`. Everything else (walking folders, decoding the
file formats, labels) is Tonic's code.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import tonic.datasets
from tonic.transforms import Downsample

from .cache import FrameCache, cache_folder
from .errors import CorruptFileError, DatasetNotFoundError, DownloadError, MissingPackageError
from .events import EventFrameDataset, FrameAugment


class _FilesDecide:
    """Mixin for Tonic classes: presence is decided by us; download failures are explained."""

    def __init__(self, *args, files_present: bool, dataset_name: str, **kwargs):
        self._files_present, self._dataset_name = files_present, dataset_name
        super().__init__(*args, **kwargs)

    def _check_exists(self) -> bool:
        return self._files_present

    def download(self) -> None:
        try:
            super().download()
        except Exception as error:  # urllib, socket, checksum and archive errors alike
            raise DownloadError(self._dataset_name, self.url, self.location_on_system, error) from error


class NMNIST(_FilesDecide, tonic.datasets.NMNIST):
    pass


class DVSGesture(_FilesDecide, tonic.datasets.DVSGesture):
    pass


class CIFAR10DVS(_FilesDecide, tonic.datasets.CIFAR10DVS):
    pass


class NCALTECH101(_FilesDecide, tonic.datasets.NCALTECH101):
    pass


class SHD(_FilesDecide, tonic.datasets.SHD):
    pass


@dataclass(frozen=True)
class TonicSpec:
    name: str
    tonic_class: type
    split_folders: tuple[str, str] | None  # (train, test) under root/<ClassName>; None: we split
    suffix: str
    sensor_size: tuple[int, int, int]
    default_T: int
    augment: FrameAugment
    layout: str
    how_to_get: str

    def folder(self, root: Path, train: bool) -> Path:
        base = Path(root) / self.tonic_class.__name__
        if self.name == "shd":
            return base
        return base / (self.split_folders[0 if train else 1] if self.split_folders else "")

    def present(self, root: Path, train: bool) -> bool:
        if self.name == "shd":
            return (self.folder(root, train) / f"shd_{'train' if train else 'test'}.h5").is_file()
        folder = self.folder(root, train)
        return folder.is_dir() and next(folder.rglob(f"*{self.suffix}"), None) is not None


_DOWNLOAD = "make_dataset(..., download=True) fetches it with Tonic, or fetch it by hand: "

SPECS = {
    spec.name: spec
    for spec in (
        TonicSpec(
            "nmnist", NMNIST, ("Train", "Test"), ".bin", (34, 34, 2), 10,
            FrameAugment(max_shift=2, drop_p=0.1),
            "  <root>/NMNIST/Train/<digit 0-9>/*.bin\n  <root>/NMNIST/Test/<digit 0-9>/*.bin",
            _DOWNLOAD + "https://www.garrickorchard.com/datasets/n-mnist (train.zip, test.zip)",
        ),
        TonicSpec(
            "dvs-gesture", DVSGesture, ("ibmGestureTrain", "ibmGestureTest"), ".npy", (128, 128, 2), 16,
            FrameAugment(max_shift=8, drop_p=0.1),  # no flip: left- and right-hand classes
            "  <root>/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy  (rows x, y, p, t in ms)\n"
            "  <root>/DVSGesture/ibmGestureTest/...",
            _DOWNLOAD + "Tonic's preprocessed archives ibmGestureTrain.tar.gz / ibmGestureTest.tar.gz "
            "(https://figshare.com/ndownloader/files/38022171 and .../38020584)",
        ),
        TonicSpec(
            "cifar10-dvs", CIFAR10DVS, None, ".aedat4", (128, 128, 2), 10,
            FrameAugment(flip=True, max_shift=8, drop_p=0.1),
            "  <root>/CIFAR10DVS/<class name, e.g. airplane>/*.aedat4  (90/10 train/test split per class)",
            _DOWNLOAD + "https://figshare.com/ndownloader/files/38023437 (needs `pip install aedat`)",
        ),
        TonicSpec(
            "ncaltech101", NCALTECH101, None, ".bin", (240, 180, 2), 10,
            FrameAugment(flip=True, max_shift=8, drop_p=0.1),
            "  <root>/NCALTECH101/Caltech101/<category>/*.bin  (90/10 train/test split per class)",
            _DOWNLOAD + "https://www.garrickorchard.com/datasets/n-caltech101 (Caltech101.zip)",
        ),
        TonicSpec(
            "shd", SHD, None, ".h5", (700, 1, 1), 20,
            FrameAugment(max_shift=5, drop_p=0.1),
            "  <root>/SHD/shd_train.h5\n  <root>/SHD/shd_test.h5",
            _DOWNLOAD + "https://zenkelab.org/datasets/shd_train.h5.zip and shd_test.h5.zip (unzip)",
        ),
    )
}


@dataclass(frozen=True)
class TonicOptions:
    """Keyword options of every Tonic data set."""

    augment: bool | None = None  # None: on for train, off for test
    cache: bool = True
    skip_corrupt: bool = False
    downsample: float = 1.0  # spatial factor (Tonic's Downsample), e.g. 0.5 for 64x64 gestures
    train_fraction: float = 0.9  # for data sets that come without a test split


def _check_file(path: Path, suffix: str) -> str | None:
    """A cheap structural check; returns the problem, or None when the file looks readable."""
    try:
        size = path.stat().st_size
        if suffix == ".bin" and size % 5:
            return f"{size} bytes is not a whole number of 5-byte event records"
        if suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            if array.ndim != 2 or array.shape[1] != 4:
                return f"expected an array of shape (N, 4) rows x, y, p, t; got {array.shape}"
        if suffix == ".aedat4":
            with open(path, "rb") as file:
                if not file.read(12).startswith(b"#!AER-DAT4"):
                    return "no '#!AER-DAT4' header"
    except (OSError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


class TonicEventSet(EventFrameDataset):
    def __init__(self, spec: TonicSpec, root, train: bool, T: int | None, download: bool, options: TonicOptions):
        self.spec, self.root, self.train = spec, Path(root), train
        self.T = spec.default_T if T is None else int(T)
        if self.T < 1:
            raise ValueError(f"T must be a positive number of time bins, got {T}")
        present = spec.present(self.root, train)
        if not present and not download:
            raise DatasetNotFoundError(spec.name, spec.folder(self.root, train), spec.layout, spec.how_to_get)
        split_kwargs = {"train": train} if spec.split_folders or spec.name == "shd" else {}
        try:
            self.source = spec.tonic_class(
                str(self.root), files_present=present, dataset_name=spec.name, **split_kwargs
            )
        except (OSError, KeyError, ValueError) as error:
            raise CorruptFileError(spec.folder(self.root, train), f"Tonic could not index it: {error}") from error

        self.classes, labels = self._labels()
        indices = self._split(labels, options.train_fraction)
        if options.skip_corrupt:
            indices = self._drop_corrupt(indices)
        self._indices = indices
        self.targets = [labels[j] for j in indices]

        factor = options.downsample
        width, height, polarities = spec.sensor_size
        self.sensor_size = (max(1, math.ceil(width * factor)), max(1, math.ceil(height * factor)), polarities)
        self._downsample = Downsample(spatial_factor=factor) if factor != 1.0 else None
        cache = None
        if options.cache:
            split = "train" if train else "test"
            binning = f"T{self.T}-{'x'.join(map(str, self.sensor_size))}-ds{factor:g}"
            cache = FrameCache(cache_folder(self.root, spec.name, split, binning), self.frame_shape)
        use_augment = train if options.augment is None else options.augment
        super().__init__(cache=cache, augment=spec.augment if use_augment else None)

    def _labels(self) -> tuple[list[str], list[int]]:
        source = self.source
        if self.spec.name == "shd":
            import h5py

            with h5py.File(self._sample_path(0), "r") as file:
                labels = file["labels"][()].astype(int).tolist()
            names = [k.decode() if isinstance(k, bytes) else str(k) for k in source.classes]
            return names, labels
        if self.spec.name == "ncaltech101":  # Tonic labels N-Caltech101 by folder name
            names = sorted(set(source.targets))
            number = {name: i for i, name in enumerate(names)}
            return names, [number[t] for t in source.targets]
        classes = source.classes
        names = sorted(classes, key=classes.get) if isinstance(classes, dict) else list(classes)
        return names, [int(t) for t in source.targets]

    def _split(self, labels: list[int], train_fraction: float) -> list[int]:
        if self.spec.split_folders or self.spec.name == "shd":
            return list(range(len(labels)))
        chosen = []
        for label in sorted(set(labels)):  # Tonic walks files unsorted: sort by path to be stable
            members = sorted((j for j, value in enumerate(labels) if value == label), key=self._sample_path)
            cut = math.ceil(train_fraction * len(members))
            chosen += members[:cut] if self.train else members[cut:]
        return sorted(chosen)

    def _sample_path(self, j: int) -> Path:
        if self.spec.name == "shd":
            return Path(self.source.location_on_system, self.source.data_filename)
        return Path(self.source.data[j])

    def _drop_corrupt(self, indices: list[int]) -> list[int]:
        kept, problems = [], []
        for j in indices:
            problem = _check_file(self._sample_path(j), self.spec.suffix)
            (problems.append((self._sample_path(j), problem)) if problem else kept.append(j))
        if problems:
            first_path, first_problem = problems[0]
            warnings.warn(
                f"{self.spec.name}: skipped {len(problems)} corrupt file(s) of {len(indices)} "
                f"(first: {first_path}: {first_problem})",
                stacklevel=3,
            )
        return kept

    def cache_key(self, index: int) -> str:
        j = self._indices[index]
        path = self._sample_path(j)
        stat = path.stat()
        return f"{os.path.relpath(path, self.root)}|{stat.st_size}|{stat.st_mtime_ns}|{j}"

    def events(self, index: int) -> np.ndarray:
        """Sample `index`'s events as Tonic decodes them (after `downsample`), inside the sensor."""
        j = self._indices[index]
        path = self._sample_path(j)
        problem = _check_file(path, self.spec.suffix)
        if problem:
            raise CorruptFileError(path, problem)
        try:
            events, _ = self.source[j]
        except ImportError as error:
            raise MissingPackageError("aedat", f"reading {path.name} ({self.spec.name})") from error
        except Exception as error:
            raise CorruptFileError(path, f"Tonic could not decode it ({type(error).__name__}: {error})") from error
        if self._downsample is not None:
            events = self._downsample(events)
        width, height, _ = self.sensor_size
        inside = (events["x"] >= 0) & (events["x"] < width)
        if "y" in events.dtype.names:
            inside &= (events["y"] >= 0) & (events["y"] < height)
        return events[inside]


def make_tonic_dataset(name: str, root, train: bool, T: int | None, download: bool, **kwargs) -> TonicEventSet:
    known = {f.name for f in fields(TonicOptions)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {unknown}; accepted: {sorted(known)}")
    return TonicEventSet(SPECS[name], root, train, T, download, TonicOptions(**kwargs))
