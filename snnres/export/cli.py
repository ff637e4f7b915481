"""``snnres export CKPT --format nir -o model.nir``: the library call behind the command."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

FORMATS = ("nir",)


def export_command(checkpoint: str, fmt: str, output: str, dt: float, allow_lossy: bool,
                   input_shape: Sequence[int] | None = None) -> int:
    """Load ``checkpoint``, export it, write ``output`` with ``nir.write``; returns the exit code.

    ``input_shape`` (one sample at one time step, e.g. ``(2, 34, 34)``) defaults to the shape of
    the first sample of the checkpoint's data set (``info["config"]``).
    """
    if fmt.lower() not in FORMATS:
        print(f"error: unknown export format {fmt!r}; supported: {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    import snnres

    from . import ExportError, to_nir

    try:
        model, info = snnres.load_checkpoint(checkpoint)
    except Exception as error:  # CheckpointError, missing file, unknown architecture
        print(f"error: cannot load {checkpoint}: {error}", file=sys.stderr)
        return 1
    arch = info.get("model_args", {}).get("arch", type(model).__name__)
    try:
        shape = tuple(int(s) for s in input_shape) if input_shape else _input_shape(info)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        graph = to_nir(model, shape, dt=dt, allow_lossy=allow_lossy)
    except ExportError as error:
        print(f"error: cannot export {arch} to NIR: {error}", file=sys.stderr)
        return 1
    path = _write(graph, Path(output))
    print(summary(graph, arch, shape, path))
    return 0


def _input_shape(info: dict[str, Any]) -> tuple[int, ...]:
    """One time step of the first sample of the data set the checkpoint was trained on."""
    config = info.get("config") or {}
    name = config.get("dataset")
    if not name:
        raise ValueError("the checkpoint records no data set; pass the input shape (--input-shape C H W)")
    from ..data import make_dataset

    T = info.get("model_args", {}).get("T")
    try:
        dataset = make_dataset(name, root=config.get("data_dir", "datasets"), train=False, T=T,
                               download=False, **(config.get("dataset_kwargs") or {}))
        sample = dataset[0][0]
    except Exception as error:
        raise ValueError(
            f"cannot read a sample of {name!r} to learn the input shape ({error}); pass it "
            "(--input-shape C H W)"
        ) from None
    in_channels = info.get("model_args", {}).get("in_channels")
    shape = tuple(sample.shape)
    if len(shape) >= 4 or (in_channels is not None and len(shape) > 1 and shape[0] != in_channels):
        shape = shape[1:]  # event frames [T, C, H, W]
    return shape


def _write(graph, path: Path) -> Path:
    """``nir.write`` to a temporary file, then rename, so a failed write leaves no half file."""
    import nir

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


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
