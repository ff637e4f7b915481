"""Data sets behind one call: `make_dataset(name, root, train, T, download, **options)`."""

from .errors import CorruptFileError, DatasetLayoutError, DatasetNotFoundError, DownloadError, MissingPackageError
from .events import EVENT_DTYPE, EventFrameDataset, FrameAugment, bin_events
from .registry import list_datasets, make_dataset
from .synthetic import SyntheticDVS, SyntheticDVSConfig

__all__ = [
    "make_dataset",
    "list_datasets",
    "bin_events",
    "EVENT_DTYPE",
    "EventFrameDataset",
    "FrameAugment",
    "SyntheticDVS",
    "SyntheticDVSConfig",
    "DatasetNotFoundError",
    "DownloadError",
    "CorruptFileError",
    "DatasetLayoutError",
    "MissingPackageError",
]
