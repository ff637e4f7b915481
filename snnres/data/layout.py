"""Which files of an event data set's folder are recordings, with which label, and what is stray.

Tonic labels a recording by the folder it lies in (N-MNIST: the folder name's last character,
N-Caltech101: any folder name) and reads every file with the data suffix anywhere below the split,
so a stray folder silently adds a class or mislabels recordings, and some stray names make Tonic
fail with a bare ``ValueError``. Here the layout is checked strictly instead: each data set says
which class folders and file names it expects; anything else is a stray entry, reported by name.
Hidden entries (``.DS_Store``, macOS ``._*`` resource forks, ``.cache``) are ignored.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# Archives that Tonic's download leaves next to the extracted files.
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class Layout:
    """``<split folder>/<class folder>/<recording file>``; ``label(class folder, file name)`` gives
    the class (an int or a name) or None when the name is not one this data set uses."""

    suffix: str
    label: Callable[[str, str], int | str | None]


def nmnist_label(folder: str, file: str) -> int | None:
    return int(folder) if re.fullmatch(r"[0-9]", folder) else None


def gesture_label(folder: str, file: str) -> int | None:
    if not re.fullmatch(r"user\d+_.+", folder):
        return None
    match = re.fullmatch(r"(\d+)\.npy", file)
    return int(match.group(1)) if match and int(match.group(1)) <= 10 else None


def category_label(folder: str, file: str) -> str:
    return folder


def named_classes(names) -> Callable[[str, str], str | None]:
    return lambda folder, file: folder if folder in names else None


@dataclass
class Index:
    paths: list[Path]
    labels: list
    strays: list[tuple[Path, str]]  # (entry, why it is stray)

    def fatal_strays(self, suffix: str) -> list[tuple[Path, str]]:
        """Strays that are or hold recordings (their labels would be wrong); the others (a README,
        an empty folder) are harmless."""
        def holds_data(path: Path) -> bool:
            if path.is_dir():
                return any(not p.name.startswith(".") and p.name.endswith(suffix) for p in path.rglob("*"))
            return path.name.endswith(suffix)
        return [(path, why) for path, why in self.strays if holds_data(path)]


def index_folder(folder: Path, layout: Layout) -> Index:
    """Recordings under ``folder`` (sorted by path) with their labels, and the stray entries."""
    paths, labels, strays = [], [], []
    for entry in sorted(_visible(Path(folder))):
        if entry.is_file():
            if not entry.name.endswith(ARCHIVE_SUFFIXES):
                strays.append((entry, "a file where only class folders belong"))
            continue
        items = sorted(_visible(entry))
        named = [(item, layout.label(entry.name, item.name)) for item in items
                 if item.is_file() and item.name.endswith(layout.suffix)]
        if named and all(label is None for _, label in named):
            strays.append((entry, "not a class folder of this data set"))
            continue
        for item in items:
            if item.is_dir():
                strays.append((item, "a folder inside a class folder"))
            elif not item.name.endswith(layout.suffix):
                strays.append((item, f"not a {layout.suffix} recording"))
        for item, label in named:
            if label is None:
                strays.append((item, "not a recording name of this data set"))
            else:
                paths.append(item)
                labels.append(label)
    return Index(paths, labels, strays)


def _visible(folder: Path):
    with os.scandir(folder) as entries:
        return [Path(e.path) for e in entries if not e.name.startswith(".")]


def holdout(paths: list[Path], labels: list, fraction: float, base: Path) -> list[bool]:
    """A fixed, class-balanced held-out part: in each class, the ``round(fraction * n)`` recordings
    whose relative paths have the smallest SHA-1 digests. The choice depends on the file names
    alone (not on a random generator, the file order or the machine), so every user gets the same
    split, and adding recordings leaves the others where they were."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    chosen = [False] * len(paths)
    by_class: dict = {}
    for j, label in enumerate(labels):
        by_class.setdefault(label, []).append(j)
    for members in by_class.values():
        digest = {j: hashlib.sha1(Path(os.path.relpath(paths[j], base)).as_posix().encode()).hexdigest() for j in members}
        count = min(len(members) - 1, math.floor(fraction * len(members) + 0.5)) if len(members) > 1 else 0
        for j in sorted(members, key=digest.get)[:count]:
            chosen[j] = True
    return chosen
