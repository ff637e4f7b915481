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
    """A data file exists but cannot be decoded or holds events no sensor of the set could record
    (truncated, another format, unsorted or out-of-sensor events)."""

    def __init__(self, path: Path | str, reason: str | None = None):
        if reason is None:  # rebuilt from its message (a DataLoader worker re-raises it so)
            self.path, self.reason = None, None
            super().__init__(str(path))
            return
        self.path, self.reason = Path(path), reason
        super().__init__(
            f"bad data file {path}: {reason}. Replace the file with a fresh copy, or pass "
            f"skip_corrupt=True to leave such files out."
        )


class DatasetLayoutError(ValueError):
    """Entries in a data set's folder that do not fit its layout (their labels would be wrong)."""

    def __init__(self, name: str, folder: Path | str, strays: list[tuple[Path, str]] | None = None, layout: str = ""):
        if strays is None:  # rebuilt from its message
            super().__init__(name)
            return
        self.strays = strays
        listed = "\n".join(f"  {path}: {why}" for path, why in strays[:10])
        more = f"\n  ... and {len(strays) - 10} more" if len(strays) > 10 else ""
        super().__init__(
            f"data set {name!r}: {len(strays)} entr{'y' if len(strays) == 1 else 'ies'} in {folder} "
            f"do{'es' if len(strays) == 1 else ''} not fit its layout:\n{listed}{more}\n"
            f"expected layout:\n{layout}\n"
            f"move or delete them, or pass skip_corrupt=True to leave them out"
        )


class MissingPackageError(ImportError):
    """An optional package needed for one data set is not installed."""

    def __init__(self, package: str, purpose: str):
        super().__init__(f"{purpose} needs the package {package!r}: pip install {package}")
