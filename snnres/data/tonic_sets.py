"""Tonic event data sets: N-MNIST, DVS128 Gesture, CIFAR10-DVS, N-Caltech101, SHD.

Tonic's own existence check wants the downloaded archive next to the extracted files and a
minimum file count; people who unpack by hand have neither. Our subclasses (same class names,
so Tonic's folder `root/<ClassName>/` is unchanged) let the extracted files decide, and turn a
failed download into a plain `DownloadError`. Downloading and decoding the file formats is
Tonic's code; which files are recordings, and their labels, is decided by `layout.py` (a strict
walk that names stray entries), and every recording is validated as it is read (`validate.py`):
a bad file raises `CorruptFileError` naming it, or with `skip_corrupt=True` is left out and
counted in one warning. With the frame cache on (the default) every recording is read, checked
and binned when the data set is built, so a bad file is found before training starts.
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

from .cache import FrameCache, writable_cache_folder
from .errors import CorruptFileError, DatasetLayoutError, DatasetNotFoundError, DownloadError, MissingPackageError
from .events import EventFrameDataset, FrameAugment
from .layout import Layout, category_label, gesture_label, holdout, index_folder, named_classes, nmnist_label
from .validate import EventError, check_events, check_file, check_spike_times


class _FilesDecide:
    """Mixin for Tonic classes: presence is decided by us; download failures are explained."""

    def __init__(self, *args, files_present: bool, dataset_name: str, **kwargs):
        self._files_present, self._dataset_name = files_present, dataset_name
        super().__init__(*args, **kwargs)
        self.folder_name = getattr(self, "_folder_name", self.folder_name)

    def _check_exists(self) -> bool:
        # Called by Tonic's __init__ just before it walks `location_on_system/folder_name`: point
        # the walk at a folder that does not exist (we index the files ourselves, see layout.py).
        self._folder_name, self.folder_name = self.folder_name, os.path.join(self.folder_name, ".snnres-indexes-itself")
        return self._files_present

    def indexed(self, paths: list[Path], targets: list) -> None:
        self.data, self.targets = [str(p) for p in paths], list(targets)

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
    files: Layout | None = None  # None: one file per split (SHD)
    recordings_under: str = ""  # the class folders' parent below the split folder

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
            Layout(".bin", nmnist_label),
        ),
        TonicSpec(
            "dvs-gesture", DVSGesture, ("ibmGestureTrain", "ibmGestureTest"), ".npy", (128, 128, 2), 16,
            FrameAugment(max_shift=8, drop_p=0.1),  # no flip: left- and right-hand classes
            "  <root>/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy  (rows x, y, p, t in ms)\n"
            "  <root>/DVSGesture/ibmGestureTest/...",
            _DOWNLOAD + "Tonic's preprocessed archives ibmGestureTrain.tar.gz / ibmGestureTest.tar.gz "
            "(https://figshare.com/ndownloader/files/38022171 and .../38020584)",
            Layout(".npy", gesture_label),
        ),
        TonicSpec(
            "cifar10-dvs", CIFAR10DVS, None, ".aedat4", (128, 128, 2), 10,
            FrameAugment(flip=True, max_shift=8, drop_p=0.1),
            "  <root>/CIFAR10DVS/<class name, e.g. airplane>/*.aedat4  (90/10 train/test split per class)",
            _DOWNLOAD + "https://figshare.com/ndownloader/files/38023437 (needs `pip install aedat`)",
            Layout(".aedat4", named_classes(tonic.datasets.CIFAR10DVS.classes)),
        ),
        TonicSpec(
            "ncaltech101", NCALTECH101, None, ".bin", (240, 180, 2), 10,
            FrameAugment(flip=True, max_shift=8, drop_p=0.1),
            "  <root>/NCALTECH101/Caltech101/<category>/*.bin  (90/10 train/test split per class)",
            _DOWNLOAD + "https://www.garrickorchard.com/datasets/n-caltech101 (Caltech101.zip)",
            Layout(".bin", category_label), "Caltech101",
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
    # > 0: hold out this fraction of the training recordings (fixed, class-balanced, layout.holdout);
    # train=True gives the rest, train=False the held-out part instead of the test split.
    val_fraction: float = 0.0


class TonicEventSet(EventFrameDataset):
    def __init__(self, spec: TonicSpec, root, train: bool, T: int | None, download: bool, options: TonicOptions):
        self.spec, self.root, self.train = spec, Path(root), train
        self.T = spec.default_T if T is None else int(T)
        if self.T < 1:
            raise ValueError(f"T must be a positive number of time bins, got {T}")
        holding_out = options.val_fraction > 0
        source_train = train or holding_out  # the held-out part comes from the training recordings
        present = spec.present(self.root, source_train)
        if not present and not download:
            raise DatasetNotFoundError(spec.name, spec.folder(self.root, source_train), spec.layout, spec.how_to_get)
        split_kwargs = {"train": source_train} if spec.split_folders or spec.name == "shd" else {}
        try:
            self.source = spec.tonic_class(
                str(self.root), files_present=present, dataset_name=spec.name, **split_kwargs
            )
        except (OSError, KeyError, ValueError) as error:
            raise CorruptFileError(spec.folder(self.root, source_train), f"Tonic could not index it: {error}") from error

        self.classes, labels = self._labels(options.skip_corrupt)
        indices = self._split(labels, options.train_fraction, source_train)
        if holding_out:
            held = holdout([self._sample_path(j) for j in indices], [labels[j] for j in indices],
                           options.val_fraction, self.root)
            indices = [j for j, h in zip(indices, held) if h != train]
        self._indices = indices
        self.targets = [labels[j] for j in indices]

        factor = options.downsample
        width, height, polarities = spec.sensor_size
        self.sensor_size = (max(1, math.ceil(width * factor)), max(1, math.ceil(height * factor)), polarities)
        self._downsample = Downsample(spatial_factor=factor) if factor != 1.0 else None
        cache = None
        if options.cache:
            # frames depend on the file, not on the part it is in: one cache per source folder
            split = "train" if source_train or not spec.split_folders else "test"
            binning = f"T{self.T}-{'x'.join(map(str, self.sensor_size))}-ds{factor:g}"
            folder = writable_cache_folder(self.root, spec.name, split, binning)
            cache = FrameCache(folder, self.frame_shape) if folder is not None else None
        use_augment = train if options.augment is None else options.augment
        super().__init__(cache=cache, augment=spec.augment if use_augment else None)
        if cache is not None or options.skip_corrupt:
            self._check_all(options.skip_corrupt)

    def _labels(self, skip_corrupt: bool) -> tuple[list[str], list[int]]:
        source = self.source
        if self.spec.name == "shd":
            import h5py

            with h5py.File(self._sample_path(0), "r") as file:
                labels = file["labels"][()].astype(int).tolist()
            names = [k.decode() if isinstance(k, bytes) else str(k) for k in source.classes]
            return names, labels
        folder = Path(source.location_on_system, source.folder_name, self.spec.recordings_under)
        index = index_folder(folder, self.spec.files)
        self._report_strays(folder, index, skip_corrupt)
        if self.spec.name == "ncaltech101":  # labelled by folder name: number the categories
            names = sorted(set(index.labels))
            number = {name: i for i, name in enumerate(names)}
            labels = [number[t] for t in index.labels]
        elif self.spec.name == "cifar10-dvs":
            classes = source.classes
            names = sorted(classes, key=classes.get)
            labels = [classes[t] for t in index.labels]
        else:
            classes = source.classes
            names = sorted(classes, key=classes.get) if isinstance(classes, dict) else list(classes)
            labels = list(index.labels)
        source.indexed(index.paths, labels)
        return names, labels

    def _report_strays(self, folder: Path, index, skip_corrupt: bool) -> None:
        fatal = index.fatal_strays(self.spec.suffix)
        if fatal and not skip_corrupt:
            raise DatasetLayoutError(self.spec.name, folder, fatal, self.spec.layout)
        if index.strays:
            listed = "; ".join(f"{path} ({why})" for path, why in index.strays[:3])
            more = f" and {len(index.strays) - 3} more" if len(index.strays) > 3 else ""
            warnings.warn(f"{self.spec.name}: ignored {len(index.strays)} stray entr{'y' if len(index.strays) == 1 else 'ies'} "
                          f"in {folder}: {listed}{more}", stacklevel=4)

    def _split(self, labels: list[int], train_fraction: float, train: bool) -> list[int]:
        if self.spec.split_folders or self.spec.name == "shd":
            return list(range(len(labels)))
        chosen = []
        for label in sorted(set(labels)):  # sorted by path, so the split is stable
            members = sorted((j for j, value in enumerate(labels) if value == label), key=self._sample_path)
            cut = math.ceil(train_fraction * len(members))
            chosen += members[:cut] if train else members[cut:]
        return sorted(chosen)

    def _sample_path(self, j: int) -> Path:
        if self.spec.name == "shd":
            return Path(self.source.location_on_system, self.source.data_filename)
        return Path(self.source.data[j])

    def path(self, index: int) -> Path:
        """The file that sample ``index`` is read from (SHD: the split's one ``.h5``)."""
        return self._sample_path(self._indices[index])

    def _describe(self, j: int) -> str:
        path = self._sample_path(j)
        return f"{path} (sample {j})" if self.spec.name == "shd" else str(path)

    def _check_all(self, skip_corrupt: bool) -> None:
        """Read and check every recording not yet in the frame cache (binning it into the cache),
        so that a bad file is found now; with ``skip_corrupt``, leave the bad ones out."""
        from rich.progress import track

        kept, problems = [], []
        todo = range(len(self._indices))
        if self.cache is not None:
            todo = [i for i in todo if not self.cache.path(self.cache_key(i)).is_file()]
        bad = set()
        for i in track(todo, description=f"checking {self.spec.name} recordings", transient=True,
                       disable=len(todo) < 2000):
            try:
                self.frames(i) if self.cache is not None else self.events(i)
            except CorruptFileError as error:
                if not skip_corrupt:
                    raise
                bad.add(i)
                problems.append(error)
        if not problems:
            return
        kept = [i for i in range(len(self._indices)) if i not in bad]
        first = problems[0]
        warnings.warn(f"{self.spec.name}: skipped {len(problems)} corrupt file(s) of {len(self._indices)} "
                      f"(first: {first.path}: {first.reason})", stacklevel=4)
        self._indices = [self._indices[i] for i in kept]
        self.targets = [self.targets[i] for i in kept]

    def cache_key(self, index: int) -> str:
        j = self._indices[index]
        path = self._sample_path(j)
        stat = path.stat()
        return f"{os.path.relpath(path, self.root)}|{stat.st_size}|{stat.st_mtime_ns}|{j}"

    def events(self, index: int) -> np.ndarray:
        """Sample `index`'s events as Tonic decodes them, checked against the sensor (then
        downsampled); a bad recording raises `CorruptFileError` naming the file and the problem."""
        j = self._indices[index]
        path = self._sample_path(j)
        problem = self._raw_problem(j)
        if problem:
            raise CorruptFileError(self._describe(j), problem)
        try:
            events, _ = self.source[j]
        except ImportError as error:
            raise MissingPackageError("aedat", f"reading {path.name} ({self.spec.name})") from error
        except Exception as error:
            raise CorruptFileError(self._describe(j), f"Tonic could not decode it ({type(error).__name__}: {error})") from error
        try:
            events = check_events(events, self.spec.sensor_size)
        except (EventError, TypeError) as error:
            problem = getattr(error, "problem", str(error))
            if "outside the sensor" in problem:
                problem += f": a recording from another sensor or data set? ({self.spec.name} is {self._sensor()})"
            raise CorruptFileError(self._describe(j), problem) from None
        if self._downsample is not None:
            events = self._downsample(events)
        return events

    def _sensor(self) -> str:
        width, height, _ = self.spec.sensor_size
        return f"{width} channels" if height == 1 else f"{width}x{height}"

    def _raw_problem(self, j: int) -> str | None:
        """What Tonic's decoding would hide: file-level damage, and NaN/inf or polarity values that
        its integer and bool casts turn into plausible events."""
        if self.spec.name != "shd":
            return check_file(self._sample_path(j), self.spec.suffix)
        import h5py

        try:
            with h5py.File(self._sample_path(j), "r") as file:
                return check_spike_times(np.asarray(file["spikes/times"][j], dtype=np.float64))
        except (OSError, KeyError, ValueError) as error:
            return f"{type(error).__name__}: {error}"


def make_tonic_dataset(name: str, root, train: bool, T: int | None, download: bool, **kwargs) -> TonicEventSet:
    known = {f.name for f in fields(TonicOptions)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {unknown}; accepted: {sorted(known)}")
    return TonicEventSet(SPECS[name], root, train, T, download, TonicOptions(**kwargs))
