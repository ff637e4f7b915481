"""``snnres simulate CKPT --events file.npy``: event-driven inference of one recording.

The lead wires ``simulate_command`` into ``snnres/cli.py``; it loads the checkpoint, reads Tonic
structured events (fields x, y, p, t) from a ``.npy`` file, bins them into ``T`` steps like
``ToFrame(sensor_size, n_time_bins=T)``, runs ``EventSimulator`` and prints the counts per layer
and the predicted class.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def simulate_command(checkpoint: str, events: str, T: int | None, sensor_size: tuple | None,
                     device: str = "cpu", strategy: str = "fast", explain: bool = False) -> int:
    """Returns the exit code: 0 on success, 1 on an error (printed to stderr). ``explain``: print the
    plan too (which kernel each layer ran and why)."""
    import snnres

    from . import EventSimulator, UnsupportedLayerError

    try:
        model, info = snnres.load_checkpoint(checkpoint)
    except Exception as error:  # CheckpointError, missing file, unknown architecture
        print(f"error: cannot load {checkpoint}: {error}", file=sys.stderr)
        return 1
    args = info.get("model_args", {})
    steps = int(T) if T is not None else args.get("T")
    if not steps:
        print("error: the checkpoint records no T; pass --T", file=sys.stderr)
        return 1
    try:
        recording = np.load(events, allow_pickle=False)
    except (OSError, ValueError) as error:
        print(f"error: cannot read events from {events}: {error}", file=sys.stderr)
        return 1
    try:
        sensor, source = _sensor_size(sensor_size, info, recording, args.get("in_channels"))
        sim = EventSimulator(model, device=device, strategy=strategy)
        out = sim.run(recording, sensor, steps)
    except (UnsupportedLayerError, ValueError, TypeError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report(out, args.get("arch", type(model).__name__), sensor, source, steps, len(recording)))
    if explain:
        print(explain_text(out, sim))
    return 0


def explain_text(out, sim) -> str:
    """The plan the run followed, or why there is none."""
    if out.plan is not None:
        return f"plan (strategy {sim.strategy!r}, one chunk of {out.steps} steps):\n{out.plan}"
    if sim.strategy == "reference":
        return "plan: the reference strategy has none (every event scattered, every neuron updated every step)"
    return "plan: the GPU simulator has none (dense signals; event-driven scatter and neuron kernels on the device)"


def _sensor_size(given, info: dict[str, Any], events: np.ndarray, in_channels: int | None):
    """``(W, H, P)``: as given, else the checkpoint's data set's, else the events' extent."""
    if given:
        return tuple(int(v) for v in given), "given"
    config = info.get("config") or {}
    name = config.get("dataset")
    if name:
        try:
            from ..data import make_dataset

            dataset = make_dataset(name, root=config.get("data_dir", "datasets"), train=False,
                                   T=info.get("model_args", {}).get("T"), download=False,
                                   **(config.get("dataset_kwargs") or {}))
            if getattr(dataset, "sensor_size", None):
                return tuple(int(v) for v in dataset.sensor_size), f"data set {name}"
        except Exception:  # the data set is not on this machine: fall back to the events
            pass
    if events.dtype.names is None or len(events) == 0 or "x" not in events.dtype.names:
        raise ValueError("cannot infer the sensor size from these events; pass --sensor-size W H P")
    width = int(events["x"].max()) + 1
    height = int(events["y"].max()) + 1 if "y" in events.dtype.names else 1
    return (width, height, int(in_channels or 2)), "inferred from the events (pass --sensor-size to be sure)"


def report(out, arch: str, sensor, source: str, T: int, n_events: int) -> str:
    lines = [f"{arch}: {n_events} events, sensor {tuple(sensor)} ({source}), T={T}",
             f"{'layer':32s} {'spikes':>10s} {'updates':>12s} {'SOPs':>14s} {'MACs':>14s}"]
    for name in out.layers:
        lines.append(f"{name:32s} {_fmt(out.spikes_per_layer.get(name)):>10s} {_fmt(out.neuron_updates.get(name)):>12s} "
                     f"{_fmt(out.sops.get(name)):>14s} {_fmt(out.macs.get(name)):>14s}")
    lines.append(f"{'total':32s} {sum(out.spikes_per_layer.values()):>10d} {sum(out.neuron_updates.values()):>12d} "
                 f"{out.total_sops:>14.0f} {sum(out.macs.values()):>14.0f}")
    top = out.logits.topk(min(3, out.logits.numel()))
    lines.append(f"predicted class: {out.prediction}  (top logits: "
                 + ", ".join(f"{int(i)}: {float(v):.4f}" for v, i in zip(top.values, top.indices)) + ")")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.0f}"
