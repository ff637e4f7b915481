"""`snnres train` killed and interrupted at the dangerous moments, in real subprocesses.

The oracle is an uninterrupted run of the same command: a run stopped anywhere and resumed must end
with the same weights, optimizer state, BatchNorm statistics and log, bit for bit, on the CPU.
"""

from __future__ import annotations

import json
import signal

import pytest
import torch
from faults import TINY, Child, interrupt_at, run

from snnres.train import read_checkpoint

EPOCHS = ["--epochs", "2"]


def _records(folder):
    records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    for r in records:
        r.pop("images_per_s", None)  # a timing
    return records


def _assert_same_state(a, b):
    a, b = read_checkpoint(a), read_checkpoint(b)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for group_a, group_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for name in group_a:
            assert torch.equal(group_a[name], group_b[name]), name
    assert a["scheduler"] == b["scheduler"]
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run every interrupted one is compared with."""
    out = tmp_path_factory.mktemp("straight") / "run"
    code, _, err = run([*TINY, *EPOCHS, "--out", str(out)], out.parent / "markers")
    assert code == 0, err
    return out


def test_interrupts_at_a_step_during_eval_and_during_a_write_then_resume_exactly(straight, tmp_path):
    out, markers = tmp_path / "run", tmp_path / "markers"
    last = out / "last.pt"
    # 1. SIGINT right after step 2 of epoch 1: saved at that step, a message that says so.
    code, _, err = interrupt_at([*TINY, *EPOCHS, "--out", str(out)], markers, "step-2")
    assert code == 130, err
    assert f"continue exactly with --resume {last}" in err and "epoch 1 of 2, step 2 of 4 done" in err
    assert (read_checkpoint(last)["epoch"], read_checkpoint(last)["step"]) == (0, 2)
    assert not (out / "best.pt").exists()
    # 2. Resume (no --out: into the checkpoint's folder); SIGTERM during epoch 1's evaluation.
    code, outp, err = interrupt_at([*TINY, *EPOCHS, "--resume", str(last)], markers, "eval-1-2", signal.SIGTERM)
    assert code == 130, err
    assert f"resuming {last} (epoch 1 of 2, step 2 of 4 done) into {out}" in outp
    state = read_checkpoint(last)
    assert (state["epoch"], state["step"]) == (0, 4)  # trained, evaluation pending
    # 3. Resume; SIGINT while the end-of-epoch last.pt is half written: the write completes, then it stops.
    code, _, err = interrupt_at([*TINY, *EPOCHS, "--resume", str(last)], markers, "write-last.pt-1")
    assert code == 130, err
    state = read_checkpoint(last)
    assert (state["epoch"], state["step"]) == (1, 0)
    assert read_checkpoint(out / "best.pt")["epoch"] == 1
    # 4. Resume with --save-every 1; SIGKILL after step 7 (epoch 2, step 3): nothing saved on the way out.
    child = Child([*TINY, *EPOCHS, "--resume", str(last), "--save-every", "1"], markers,
                  pause_at="wrote-last.pt-2", pause=5)
    child.wait_for("wrote-last.pt-2")  # the save after step 2 of epoch 2 (step 6 of the run)
    child.send(signal.SIGKILL)
    child.finish()
    state = read_checkpoint(last)
    assert (state["epoch"], state["step"]) == (1, 2)
    # 5. Resume to the end.
    code, _, err = run([*TINY, *EPOCHS, "--resume", str(last)], markers)
    assert code == 0, err
    _assert_same_state(straight / "last.pt", last)
    assert _records(out) == _records(straight)  # one record per epoch, the same numbers
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_kill_between_best_and_last_keeps_best_and_resume_ends_equal(straight, tmp_path):
    out, markers = tmp_path / "run", tmp_path / "markers"
    # with two DataLoader workers: the batches and their augmentation equal the single-process run's
    args = [*TINY, *EPOCHS, "--out", str(out), "--save-every", "2", "--workers", "2"]
    child = Child(args, markers, pause_at="wrote-best.pt-1", pause=5)
    child.wait_for("wrote-best.pt-1")  # best.pt of epoch 1 is on disk, its last.pt not yet
    child.send(signal.SIGKILL)
    child.finish()
    best = read_checkpoint(out / "best.pt")
    assert best["epoch"] == 1 and "optimizer" not in best  # weights only
    state = read_checkpoint(out / "last.pt")
    assert (state["epoch"], state["step"]) == (0, 2)  # the --save-every save before it
    code, _, err = run([*TINY, *EPOCHS, "--resume", str(out / "last.pt"), "--workers", "2"], markers)
    assert code == 0, err
    _assert_same_state(straight / "last.pt", out / "last.pt")
    a, b = read_checkpoint(straight / "best.pt"), read_checkpoint(out / "best.pt")
    assert a["epoch"] == b["epoch"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_killed_writes_leave_no_temp_files_after_the_next_start(tmp_path):
    out, markers = tmp_path / "run", tmp_path / "markers"
    child = Child([*TINY, "--epochs", "1", "--out", str(out), "--save-every", "1"], markers,
                  pause_at="write-last.pt-2", pause=30)
    child.wait_for("write-last.pt-2")  # the second save is half written
    child.send(signal.SIGKILL)
    child.finish()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".last.pt.tmp-")]
    assert leftovers == [f".last.pt.tmp-{child.proc.pid}"]
    assert read_checkpoint(out / "last.pt")["step"] == 1  # the first save, intact
    code, outp, err = run([*TINY, "--epochs", "1", "--resume", str(out / "last.pt")], markers)
    assert code == 0, err
    assert "removed 1 temporary file(s) of killed writes" in outp
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_nan_pixel_stops_before_any_update_naming_epoch_step_and_files(tmp_path):
    out, markers = tmp_path / "run", tmp_path / "markers"
    # Training sample 5 holds one NaN pixel; the first epoch's order puts it in some batch.
    code, _, err = run([*TINY, "--epochs", "1", "--out", str(out)], markers, nan_sample=5)
    assert code == 2, err
    assert "Traceback" not in err
    assert "the gradients became non-finite" in err and "at epoch 1, step" in err
    step = int(err.split("at epoch 1, step ")[1].split()[0])
    last = out / "last.pt"
    assert f"{last} holds the state before that step" in err and last.is_file()
    state = read_checkpoint(last)
    assert (state["epoch"], state["step"]) == (0, step - 1)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    # Asked to skip such steps: the run ends, the step is counted, the weights stay finite and spiking.
    code, outp, err = run([*TINY, "--epochs", "1", "--resume", str(last), "--on-nonfinite", "skip"], markers,
                          nan_sample=5)
    assert code == 0, err
    # the spikes swallow the NaN in the forward pass (NaN > threshold is False): the loss stays
    # finite and only the surrogate gradients (and BatchNorm's statistics) carry it
    assert f"epoch 1, step {step} of 4: non-finite gradients, step skipped (1 so far)" in outp
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert record["skipped_steps"] == 1 and record["spikes_per_neuron"] > 0
    final = read_checkpoint(last)["model"]  # BatchNorm statistics included: the failed step's were undone
    assert all(torch.isfinite(v).all() for v in final.values() if v.is_floating_point())


def test_interrupt_before_the_first_step_and_resume_of_a_finished_run_say_what_is_true(straight, tmp_path):
    out, markers = tmp_path / "run", tmp_path / "markers"
    code, _, err = interrupt_at([*TINY, "--epochs", "1", "--out", str(out)], markers, "loaders")
    assert code == 130, err
    assert "interrupted before the first training step: nothing was saved" in err
    assert "--resume" not in err and not (out / "last.pt").exists()
    before = (straight / "last.pt").stat().st_mtime_ns
    code, outp, err = run([*TINY, *EPOCHS, "--resume", str(straight / "last.pt")], markers)
    assert code == 0, err
    assert f"{straight / 'last.pt'} is a finished run (2 of 2 epochs done): nothing to do" in outp
    assert (straight / "last.pt").stat().st_mtime_ns == before
