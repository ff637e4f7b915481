"""``snnres export CKPT --format nir -o model.nir``: the library call behind the command."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

FORMATS = ("nir",)
USER_ERROR = 2  # the exit status of every user error (as snnres.cli.USER_ERROR)


def export_command(checkpoint: str, fmt: str, output: str, dt: float, allow_lossy: bool,
                   input_shape: Sequence[int] | None = None) -> int:
    """Load ``checkpoint``, export it, write ``output`` with ``nir.write``; returns the exit code
    (0, or 2 for any user error: the message goes to stderr).

    ``input_shape`` (one sample at one time step, e.g. ``(2, 34, 34)``) defaults to the one the
    checkpoint records (``TrainedCheckpoint.input_shape``).
    """
    from ..files import WriteError
    from ..train import CheckpointError, open_trained
    from . import ExportError, to_nir

    if fmt.lower() not in FORMATS:
        return _fail(f"unknown export format {fmt!r}; supported: {', '.join(FORMATS)}")
    try:
        trained = open_trained(checkpoint)
    except (CheckpointError, OSError) as error:
        return _fail(f"cannot load {checkpoint}: {error}")
    arch = trained.info.get("model_args", {}).get("arch", type(trained.model).__name__)
    try:
        shape = tuple(int(s) for s in input_shape) if input_shape else trained.input_shape()
        graph = to_nir(trained.model, shape, dt=dt, allow_lossy=allow_lossy)
    except ExportError as error:
        return _fail(f"cannot export {arch} to NIR: {error}")
    except (ValueError, TypeError) as error:
        return _fail(str(error))
    try:
        path = _write(graph, Path(output))
    except WriteError as error:
        return _fail(str(error))
    print(summary(graph, arch, shape, path))
    return 0


def _fail(message: str) -> int:
    print(f"snnres export: {message}", file=sys.stderr)
    return USER_ERROR


def _write(graph, path: Path) -> Path:
    """``nir.write`` through ``atomic_write``: a failed write leaves no half file."""
    import nir

    from ..files import atomic_write

    return atomic_write(path, lambda tmp: nir.write(tmp, graph))


def summary(graph, arch: str, input_shape: tuple[int, ...], path: Path) -> str:
    import numpy as np

    kinds = Counter(type(n).__name__ for n in graph.nodes.values())
    neurons = sum(int(np.prod(n.v_threshold.shape)) for n in graph.nodes.values() if type(n).__name__ == "LIF")
    meta = graph.metadata
    lines = [
        f"exported {arch} to {path} ({path.stat().st_size / 1024:.1f} KiB, NIR)",
        f"  input {input_shape} per time step, T={meta.get('T')}, dt={meta.get('dt')}, readout: {meta.get('readout')}",
        f"  {len(graph.nodes)} nodes ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), "
        f"{len(graph.edges)} edges, {neurons} LIF neurons, reset: {meta.get('reset')}",
    ]
    if meta.get("lossy"):
        lines.append(f"  LOSSY: {meta.get('lossy_details')}")
    return "\n".join(lines)
