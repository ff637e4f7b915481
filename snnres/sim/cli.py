"""``snnres simulate CKPT --events file.npy | --sample N``: event-driven inference of one recording.

Loads the checkpoint, takes a recording (Tonic structured events, fields x, y, p, t, from a
``.npy`` file, or recording ``N`` of the checkpoint's data set), bins it into ``T`` steps like
``ToFrame(sensor_size, n_time_bins=T)``, runs ``EventSimulator`` and prints the counts per layer
and the predicted class. The sensor size comes from the checkpoint; one that does not fit the
model's input is refused.
"""

from __future__ import annotations

import sys

import numpy as np

USER_ERROR = 2  # the exit status of every user error (as snnres.cli.USER_ERROR)


def simulate_command(checkpoint: str, events: str | None, T: int | None, sensor_size: tuple | None,
                     device: str = "cpu", sample: int | None = None, split: str = "test") -> int:
    """Returns the exit code: 0 on success, 2 on a user error (printed to stderr)."""
    from ..data import CorruptFileError, DatasetNotFoundError
    from ..train import CheckpointError, open_trained
    from . import EventSimulator, UnsupportedLayerError

    try:
        trained = open_trained(checkpoint)
    except (CheckpointError, OSError) as error:
        return _fail(f"cannot load {checkpoint}: {error}")
    args = trained.info.get("model_args", {})
    steps = int(T) if T is not None else args.get("T")
    if not steps:
        return _fail("the checkpoint records no T; pass --T")
    try:
        recording, what = _recording(trained, events, sample, split)
        sensor, source = sensor_size_for(trained, sensor_size, recording, args.get("in_channels"))
        out = EventSimulator(trained.model, device=device).run(recording, sensor, steps)
    except (UnsupportedLayerError, ValueError, TypeError, RuntimeError, OSError, DatasetNotFoundError,
            CorruptFileError) as error:
        return _fail(str(error))
    print(report(out, args.get("arch", type(trained.model).__name__), sensor, source, steps, len(recording), what))
    return 0


def _fail(message: str) -> int:
    print(f"snnres simulate: {message}", file=sys.stderr)
    return USER_ERROR


def _recording(trained, events: str | None, sample: int | None, split: str) -> tuple[np.ndarray, str]:
    if events is not None:
        try:
            return np.load(events, allow_pickle=False), events
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read events from {events}: {error}") from None
    dataset = trained.dataset(train=split == "train")
    if not hasattr(dataset, "events"):
        raise ValueError(f"{trained.dataset_name} is not an event data set: pass --events FILE")
    if not 0 <= sample < len(dataset):
        raise ValueError(f"--sample {sample}: the {split} split of {trained.dataset_name} has recordings 0..{len(dataset) - 1}")
    label = int(dataset.targets[sample]) if hasattr(dataset, "targets") else None
    return dataset.events(sample), f"{trained.dataset_name} {split} recording {sample}" + (
        f" (label {label})" if label is not None else "")


def sensor_size_for(trained, given, events: np.ndarray, in_channels: int | None):
    """``(W, H, P)`` and where it came from: as given (checked against the model's), else the
    checkpoint's, else (an old checkpoint without a data set) the events' extent."""
    recorded = trained.sensor_size()
    if given:
        given = tuple(int(v) for v in given)
        if recorded and given != tuple(recorded):
            raise ValueError(f"--sensor-size {given} does not fit the model, trained on a {tuple(recorded)} sensor "
                             f"({trained.dataset_name}); give events of that sensor (downsample them first)")
        if in_channels and given[2] != in_channels:
            raise ValueError(f"--sensor-size {given} has {given[2]} polarities but the model takes "
                             f"{in_channels} input channels")
        return given, "given"
    if recorded:
        return tuple(recorded), f"from the checkpoint ({trained.dataset_name})"
    if events.dtype.names is None or len(events) == 0 or "x" not in events.dtype.names:
        raise ValueError("cannot infer the sensor size from these events; pass --sensor-size W H P")
    width = int(events["x"].max()) + 1
    height = int(events["y"].max()) + 1 if "y" in events.dtype.names else 1
    return (width, height, int(in_channels or 2)), "inferred from the events (pass --sensor-size to be sure)"


def report(out, arch: str, sensor, source: str, T: int, n_events: int, what: str = "") -> str:
    lines = [f"{arch}: {what + ', ' if what else ''}{n_events} events, sensor {tuple(sensor)} ({source}), T={T}",
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
