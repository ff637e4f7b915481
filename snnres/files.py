"""Writing files so that nothing a user saved is lost: atomic replace, stale temp files, clear errors.

Every file snnres writes for a user (checkpoints, NIR graphs, sweep results, cached frames) goes
through :func:`atomic_write`: the bytes go to a temporary file in the target's folder, are flushed
to the disk, and the temporary file is renamed over the target. A crash at any instant leaves the
old file or the new one, never half of one; the rename is atomic because both names are in the
same folder (one file system).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import Callable

#: ``.NAME.tmp-PID``: the temporary name of a write to ``NAME`` by process ``PID``.
_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


class WriteError(OSError):
    """A file could not be written (full disk, read-only or missing folder, no permission)."""


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write(path: str | Path, write: Callable[[Path], None], fsync: bool = True) -> Path:
    """Call ``write(temp)`` to fill a temporary file, flush it to disk, rename it onto ``path``.

    Any failure removes the temporary file, keeps the previous ``path`` and raises
    :class:`WriteError` naming the file, the cause and what to do.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if fsync:
            _fsync_folder(path.parent)
    except BaseException as error:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(error, (OSError, RuntimeError)) and not isinstance(error, WriteError):
            raise write_error(path, error) from None
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """``atomic_write`` of a text file (UTF-8)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_error(path: Path, error: BaseException) -> WriteError:
    """A :class:`WriteError` saying why ``path`` could not be written and what to do."""
    code = getattr(error, "errno", None)
    folder = path.parent
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or _looks_full(error, folder):
        reason = "the disk is full (or the file is over a size limit)"
        fix = f"free space on the disk that holds {folder}, or write somewhere else"
    elif code == errno.EROFS:
        reason = "the file system is read-only"
        fix = "write to a writable folder"
    elif code in (errno.EACCES, errno.EPERM):
        reason = "permission denied"
        fix = f"make {folder} writable, or write somewhere else"
    elif code in (errno.ENOENT, errno.ENOTDIR):
        reason = "its folder does not exist and cannot be made"
        fix = "check the path"
    else:
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        fix = "check the path and the disk"
    return WriteError(code or errno.EIO, f"cannot write {path}: {reason}; {fix} (the previous file, "
                      "if any, is unchanged)")


def _looks_full(error: BaseException, folder: Path) -> bool:
    """torch.save reports a failed write as a RuntimeError without an errno: ask the disk."""
    if not isinstance(error, RuntimeError):
        return False
    try:
        return shutil.disk_usage(folder).free < 1 << 20 or "file write failed" in str(error).lower()
    except OSError:
        return False


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (the folder's entry), where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files of writes whose process is gone (killed mid-write); returns them."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP.match(entry.name)
        if match and entry.is_file() and not _alive(int(match["pid"])):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of an earlier process that had our number
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
