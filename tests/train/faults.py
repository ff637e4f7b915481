"""Run ``snnres train`` in a subprocess and hit it at a chosen moment (a signal, SIGKILL).

The child is ``python tests/train/faults.py DRIVER-OPTIONS -- snnres-arguments``: the real CLI
(``snnres.cli.main``), with marker files written at the moments a test waits for:

- ``loaders`` before the data sets are built (the setup, before any step),
- ``step-N`` after optimizer step N of the run (1-based, counted over epochs as the schedule does),
- ``eval-E-B`` after evaluation batch B of epoch E,
- ``write-NAME-K`` while the K-th write of NAME (``last.pt``, ``best.pt``) is half done: the
  temporary file holds the bytes, the rename has not happened,
- ``wrote-NAME-K`` after it.

``--pause-at MARKER --pause S`` holds the child S seconds right after MARKER, so that a signal sent
when the marker appears lands at that moment. ``--nan-sample I`` puts one NaN pixel into training
sample I of synthetic-dvs (a data fault). Nothing else in the run is changed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()

#: Small enough for CI: spiking-cnn with BatchNorm on 16x16 synthetic-dvs with its augmentation,
#: 32 training samples in batches of 8 (4 steps per epoch), 32 test samples (4 eval batches).
TINY = ["train", "--arch", "spiking-cnn", "--dataset", "synthetic-dvs", "--dataset-arg", "num_samples=32",
        "--dataset-arg", "size=16", "--T", "4", "--batch-size", "8", "--lr", "0.05", "--device", "cpu"]


def child_env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", COLUMNS="200")


class Child:
    """A running ``snnres`` child; ``wait_for(marker)`` then ``send(signal)``."""

    def __init__(self, args: list[str], markers: Path, pause_at: str | None = None, pause: float = 0.0,
                 nan_sample: int | None = None, cwd: Path | None = None):
        markers.mkdir(parents=True, exist_ok=True)
        for old in markers.iterdir():
            old.unlink()
        self.markers = markers
        driver = ["--markers", str(markers)]
        if pause_at:
            driver += ["--pause-at", pause_at, "--pause", str(pause)]
        if nan_sample is not None:
            driver += ["--nan-sample", str(nan_sample)]
        self.proc = subprocess.Popen([sys.executable, str(HERE), *driver, "--", *args], cwd=cwd, env=child_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for(self, marker: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not (self.markers / marker).exists():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"the child ended (rc {self.proc.returncode}) before {marker}:\n{out[-2000:]}\n{err[-3000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"no {marker} within {timeout} s")
            time.sleep(0.005)

    def send(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def finish(self, timeout: float = 600) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def run(args: list[str], markers: Path, **kwargs) -> tuple[int, str, str]:
    """Run to the end (no fault); returns (exit code, stdout, stderr)."""
    return Child(args, markers, **kwargs).finish()


def interrupt_at(args: list[str], markers: Path, marker: str, sig: int = signal.SIGINT, pause: float = 2.0,
                 **kwargs) -> tuple[int, str, str]:
    """Run until ``marker``, send ``sig`` while the child holds there, return how it ended."""
    child = Child(args, markers, pause_at=marker, pause=pause, **kwargs)
    child.wait_for(marker)
    child.send(sig)
    return child.finish()


# ---- the child side -------------------------------------------------------------------------------

def _install(markers: Path, pause_at: str | None, pause: float, nan_sample: int | None) -> None:
    import torch

    import snnres.train.loop as loop
    import snnres.train.run as run

    def mark(name: str) -> None:
        (markers / name).touch()
        if name == pause_at:
            time.sleep(pause)

    real_train_epoch, real_evaluate = run.train_epoch, run.evaluate

    def train_epoch(model, loader, steps, opt, counter, progress, epoch, stop=None, show=None, after_step=None):
        def show_and_mark(*a, **k):
            if show is not None:
                show(*a, **k)
            mark(f"step-{opt.scheduler.last_epoch}")

        return real_train_epoch(model, loader, steps, opt, counter, progress, epoch, stop, show_and_mark, after_step)

    def evaluate(model, loader, *args, **kwargs):
        epoch = len(list(markers.glob("eval-started-*"))) + 1
        (markers / f"eval-started-{epoch}").touch()

        class Marked:
            def __iter__(self):
                for b, batch in enumerate(loader, 1):
                    yield batch
                    mark(f"eval-{epoch}-{b}")

            def __len__(self):
                return len(loader)

        return real_evaluate(model, Marked(), *args, **kwargs)

    real_make_loaders = run.make_loaders

    def make_loaders(*args, **kwargs):
        mark("loaders")
        return real_make_loaders(*args, **kwargs)

    run.train_epoch, run.evaluate, run.make_loaders = train_epoch, evaluate, make_loaders

    real_save, writes = torch.save, {}

    def save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        name = Path(str(f)).name
        for target in ("last.pt", "best.pt"):
            if name.startswith(f".{target}.tmp-"):
                writes[target] = writes.get(target, 0) + 1
                mark(f"write-{target}-{writes[target]}")

    torch.save = save

    import snnres.train.rundir as rundir
    real_checkpoint = rundir.save_checkpoint

    def save_checkpoint(path, state):
        result = real_checkpoint(path, state)
        name = Path(path).name
        mark(f"wrote-{name}-{writes.get(name, 0)}")
        return result

    rundir.save_checkpoint = save_checkpoint

    if nan_sample is not None:
        from snnres.data.synthetic import SyntheticDVS

        real_getitem = SyntheticDVS.__getitem__

        def getitem(self, index):
            frames, label = real_getitem(self, index)
            if self.train and index == nan_sample:
                frames = frames.clone()
                frames[0, 0, 0, 0] = float("nan")
            return frames, label

        SyntheticDVS.__getitem__ = getitem
    del loop


def _main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--markers", type=Path, required=True)
    parser.add_argument("--pause-at")
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--nan-sample", type=int)
    argv = sys.argv[1:]
    split = argv.index("--")
    options = parser.parse_args(argv[:split])
    _install(options.markers, options.pause_at, options.pause, options.nan_sample)
    from snnres.cli import main

    return main(argv[split + 1:])


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(_main())
