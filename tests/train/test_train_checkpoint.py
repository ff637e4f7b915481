"""Checkpoints are written atomically and read back with weights_only=True."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from snnres.train.checkpoint import (CheckpointError, read_checkpoint, rng_state, save_checkpoint,
                                     set_rng_state)


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "model_args": {"arch": "x"}, "epoch": 1}


def test_round_trip_with_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _state(1.0))
    state = read_checkpoint(path)
    assert torch.equal(state["model"]["w"], torch.ones(3))
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_failure_during_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", _state(1.0))

    def broken_save(obj, f):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(2.0))
    monkeypatch.undo()
    assert torch.equal(read_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_process_killed_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    # A child process saves a large checkpoint over an existing one and is SIGKILLed mid-write.
    path = save_checkpoint(tmp_path / "last.pt", _state(1.0))
    code = textwrap.dedent(f"""
        import torch, sys
        from snnres.train.checkpoint import save_checkpoint
        big = {{"model": {{"w": torch.zeros(64_000_000)}}, "model_args": {{"arch": "x"}}}}
        print("saving", flush=True)
        save_checkpoint({str(path)!r}, big)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "saving"
    tmp = tmp_path / f".last.pt.tmp-{child.pid}"
    deadline = time.monotonic() + 30
    while not (tmp.exists() and tmp.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert tmp.exists(), "the child never started writing"
    os.kill(child.pid, signal.SIGKILL)  # mid-write: the temp file is there, the rename is not done
    child.wait()
    state = read_checkpoint(path)
    assert torch.equal(state["model"]["w"], torch.ones(3))


def test_corrupt_and_foreign_files_are_named(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt is not a readable snnres checkpoint"):
        read_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(2)}, other)
    with pytest.raises(CheckpointError, match="not an snnres checkpoint"):
        read_checkpoint(other)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    path = save_checkpoint(tmp_path / "rng.pt", {"model": {}, "model_args": {}, "rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(read_checkpoint(path)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_non_finite_weights_are_never_written_over_a_good_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _state(1.0))
    with pytest.raises(CheckpointError, match="NaN or infinite.*w.*the file on disk is kept"):
        save_checkpoint(path, _state(float("nan")))
    assert torch.equal(read_checkpoint(path)["model"]["w"], torch.ones(3))


def test_resume_repairs_a_best_pt_that_a_kill_lost(tmp_path):
    from snnres.train.rundir import RunFolder

    # last.pt is itself the best epoch (the order an older version wrote in), best.pt is missing
    state = {**_state(2.0), "epoch": 3, "step": 0, "best": {"top1": 0.5, "epoch": 3}, "optimizer": {"x": 1}}
    RunFolder(tmp_path).prepare({"epochs": 5}, state)
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 3 and torch.equal(best["model"]["w"], torch.full((3,), 2.0)) and "optimizer" not in best
    # a mid-epoch last.pt has moved on from the best weights: nothing to repair from
    (tmp_path / "best.pt").unlink()
    RunFolder(tmp_path).prepare({"epochs": 5}, {**state, "step": 2})
    assert not (tmp_path / "best.pt").exists()
