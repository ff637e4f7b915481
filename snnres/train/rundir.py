"""A run folder: ``config.yaml``, ``log.jsonl``, TensorBoard logs, ``last.pt``, ``best.pt``.

The files agree at every instant, whatever kills the process: checkpoints are written atomically,
``best.pt`` (weights only) is written before the ``last.pt`` that records it as the best, and a
resume rewrites ``log.jsonl`` to the epochs its checkpoint has finished (so each epoch has one
record) and repairs a ``best.pt`` that an older version lost. Usable by any training loop
(``snnres train``, pre-training): it knows nothing of the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..files import remove_stale_temps, write_error, write_text
from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint

#: What ``best.pt`` keeps of a full training state: enough to use the model, not to resume.
WEIGHTS_ONLY = ("model", "model_args", "config", "epoch", "metrics", "best", "data")


class RunFolder:
    def __init__(self, out: str | Path, is_main: bool = True):
        self.out, self.is_main = Path(out), is_main
        self.last, self.best = self.out / "last.pt", self.out / "best.pt"
        self.log = self.out / "log.jsonl"
        self.tb = None

    def check_fresh(self) -> None:
        """A new run must not overwrite the checkpoints of another one."""
        if self.last.exists():
            try:
                state = read_checkpoint(self.last)
                where = f" ({describe_position(state)})"
            except CheckpointError:
                where = ""
            raise CheckpointError(f"{self.out} already holds a run{where}: continue it with --resume {self.last}, "
                                  f"or pass another --out (or delete {self.out})")

    def prepare(self, config: dict[str, Any], resume_state: dict | None) -> list[Path]:
        """Make the folder, remove temp files of killed writes, write the config, align the log."""
        if not self.is_main:
            return []
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_error(self.out / "config.yaml", error) from None
        removed = remove_stale_temps(self.out)
        write_text(self.out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        done = resume_state["epoch"] if resume_state else 0
        self._trim_log(done)
        self._open_tensorboard(purge_step=done + 1)
        if resume_state is not None:
            self.repair_best(resume_state)
        return removed

    def _trim_log(self, done_epochs: int) -> None:
        """Keep one record per finished epoch (the last one written), drop those of later epochs."""
        if not self.log.exists():
            return
        kept: dict[tuple, str] = {}
        for line in self.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            epoch = record.get("epoch")
            if isinstance(epoch, int) and epoch <= done_epochs:
                kept[(epoch, "ranks_in_sync" in record)] = json.dumps(record)
        write_text(self.log, "".join(line + "\n" for _, line in sorted(kept.items())))

    def _open_tensorboard(self, purge_step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        # purge_step drops events of the epochs a resume is about to redo
        self.tb = SummaryWriter(str(self.out / "tensorboard"), purge_step=purge_step)

    def write_log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.log, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                    self.tb.add_scalar(key, value, record["epoch"])
            self.tb.flush()

    def save(self, state: dict[str, Any], new_best: bool) -> None:
        """``best.pt`` first (when ``state`` is a new best), then ``last.pt``."""
        if not self.is_main:
            return
        if new_best:
            save_checkpoint(self.best, weights_only(state))
        save_checkpoint(self.last, state)

    def repair_best(self, state: dict[str, Any]) -> None:
        """If ``state`` (a resumed ``last.pt``) is itself the best epoch, make sure ``best.pt`` holds it."""
        best = state.get("best") or {}
        if best.get("epoch") != state.get("epoch") or state.get("step", 0) != 0:
            return
        try:
            if read_checkpoint(self.best).get("epoch") == best["epoch"]:
                return
        except CheckpointError:
            pass
        save_checkpoint(self.best, weights_only(state))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def weights_only(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state[k] for k in WEIGHTS_ONLY if k in state}


def describe_position(state: dict[str, Any]) -> str:
    """``epoch 3 of 8 done`` or ``epoch 4 of 8, step 2 of 5 done``."""
    epochs = (state.get("config") or {}).get("epochs", "?")
    done, step = state.get("epoch", 0), state.get("step", 0)
    if step:
        steps = state.get("steps_per_epoch", "?")
        return f"epoch {done + 1} of {epochs}, step {step} of {steps} done"
    return f"{done} of {epochs} epochs done"
