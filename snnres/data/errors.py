"""Errors raised by the data loaders; each says what was expected, what was found and what to do."""

from __future__ import annotations

from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are not where the loader looked, and downloading was not asked for."""

    def __init__(self, name: str, folder: Path, layout: str, how_to_get: str):
        self.name, self.folder = name, Path(folder)
        super().__init__(
            f"data set {name!r} not found: searched {self.folder}\n"
            f"expected layout:\n{layout}\n"
            f"to get it: {how_to_get}"
        )


class DownloadError(RuntimeError):
    """Downloading a data set failed (no network, server gone, checksum mismatch)."""

    def __init__(self, name: str, url: str, folder: Path, cause: BaseException):
        self.name, self.url, self.folder = name, url, Path(folder)
        super().__init__(
            f"could not download data set {name!r} from {url}: {type(cause).__name__}: {cause}.\n"
            f"Is there a network connection? Otherwise download the archive by hand on a machine "
            f"that has one and unpack it under {self.folder} (see datasets/README.md)."
        )


class CorruptFileError(ValueError):
    """A data file exists but cannot be decoded (truncated, wrong format)."""

    def __init__(self, path: Path | str, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(
            f"corrupt or truncated data file {self.path}: {reason}. Replace the file with a fresh "
            f"copy, or pass skip_corrupt=True to leave such files out."
        )


class MissingPackageError(ImportError):
    """An optional package needed for one data set is not installed."""

    def __init__(self, package: str, purpose: str):
        super().__init__(f"{purpose} needs the package {package!r}: pip install {package}")
