"""User errors give one message (what, where, what to do) and exit status 2, never a traceback."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from faults import TINY, child_env

from snnres.cli import main
from snnres.train import read_checkpoint


def _cli(*args: str, limit_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    return subprocess.run([sys.executable, "-m", "snnres", *args], env=child_env(), capture_output=True, text=True,
                          timeout=600, preexec_fn=limit if limit_file_bytes else None)


def _edited(trained: Path, folder: Path, edit) -> Path:
    state = read_checkpoint(trained / "last.pt")
    edit(state)
    path = folder / "edited" / "last.pt"
    path.parent.mkdir(exist_ok=True)
    torch.save(state, path)
    return path


def _fails(capsys, *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"snnres {args[0]}: ") and "Traceback" not in err
    return err


def test_checkpoints_that_cannot_be_used_are_named(trained, tmp_path, capsys):
    unknown = _edited(trained, tmp_path, lambda s: s["model_args"].update(arch="no-such-net"))
    assert "cannot build its model 'no-such-net'" in _fails(capsys, "eval", str(unknown))
    missing = _edited(trained, tmp_path, lambda s: s["model_args"].pop("T"))
    assert "model_args lack ['T']" in _fails(capsys, "energy-report", str(missing))
    absent = _edited(trained, tmp_path, lambda s: s["config"].update(dataset="nmnist", data_dir=str(tmp_path / "none"),
                                                                     dataset_kwargs={}))
    err = _fails(capsys, "eval", str(absent))
    assert "data set 'nmnist' not found" in err and "to get it" in err


def test_resume_with_weights_that_do_not_fit_their_arguments(trained, tmp_path, capsys):
    def widen(state):
        key = next(k for k, v in state["model"].items() if v.ndim == 4)
        state["model"][key] = torch.zeros(3, *state["model"][key].shape[1:])

    bad = _edited(trained, tmp_path, widen)
    err = _fails(capsys, *TINY, "--epochs", "2", "--resume", str(bad))
    assert f"{bad} does not fit spiking-cnn" in err and "mis-shaped" in err


def test_a_new_run_does_not_overwrite_another(trained, capsys):
    before = (trained / "last.pt").stat().st_mtime_ns
    err = _fails(capsys, *TINY, "--epochs", "1", "--out", str(trained))
    assert f"already holds a run" in err and f"--resume {trained / 'last.pt'}" in err
    assert (trained / "last.pt").stat().st_mtime_ns == before


def test_export_errors_are_user_errors(trained, tmp_path, capsys):
    assert "unknown export format 'onnx'" in _fails(capsys, "export", str(trained / "best.pt"), "--format", "onnx",
                                                    "-o", str(tmp_path / "m.onnx"))
    assert "cannot load" in _fails(capsys, "export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "m.nir"))


def _mount_tmpfs(folder: Path, options: str):
    """A tmpfs at ``folder`` (root only); returns its unmount, or None where mounting is not possible."""
    folder.mkdir()
    if os.geteuid() != 0:
        return None
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode:
        return None
    return lambda: subprocess.run(["umount", str(folder)], check=False)


def test_full_disk_is_a_message_and_keeps_nothing_half_written(tmp_path):
    disk = tmp_path / "disk"
    unmount = _mount_tmpfs(disk, "size=32k")  # a real full disk (ENOSPC) where we may mount one
    out = disk / "run"
    try:
        # elsewhere a file-size limit makes the writes fail as a full disk does (EFBIG)
        result = _cli(*TINY, "--epochs", "1", "--max-steps-per-epoch", "1", "--out", str(out),
                      limit_file_bytes=None if unmount else 16 * 1024)
        left = sorted(p.name for p in out.iterdir())
    finally:
        if unmount:
            unmount()
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "enforce fail" not in result.stderr
    assert re.search(rf"cannot write {re.escape(str(out))}/(best|last)\.pt: the disk is full", result.stderr)
    assert not [name for name in left if ".tmp-" in name]


def _read_only_folder(tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder, None
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("root without mount: no way to make a folder read-only here")
    return folder, lambda: subprocess.run(["umount", str(folder)], check=False)


def test_read_only_out_is_a_message(tmp_path):
    folder, cleanup = _read_only_folder(tmp_path)
    try:
        result = _cli(*TINY, "--epochs", "1", "--out", str(folder / "run"))
    finally:
        if cleanup:
            cleanup()
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"cannot write {folder / 'run'}" in result.stderr
    assert "read-only" in result.stderr or "permission denied" in result.stderr


def test_typo_in_arch_is_reported_before_any_data_is_read(tmp_path, capsys):
    # the data set is not there either: the architecture's error comes first, without building it
    err = _fails(capsys, "train", "--arch", "ms-resnet-18", "--dataset", "nmnist", "--data-dir", str(tmp_path))
    assert "unknown model 'ms-resnet-18'" in err and "ms-resnet18" in err
    assert "unknown data set 'nmnsit'" in _fails(capsys, "train", "--dataset", "nmnsit")
    assert "--on-nonfinite 'ignore'" in _fails(capsys, "train", "--on-nonfinite", "ignore")


def test_help_shows_the_defaults():
    text = _cli("train", "--help").stdout
    assert "(default: ms-resnet18)" in text and "(default: 8" in text and "(default: stop)" in text
    assert "(default: auto)" in _cli("eval", "--help").stdout


def test_eval_equals_the_training_log_and_energy_report_is_not_augmented(trained, tmp_path):
    record = json.loads((trained / "log.jsonl").read_text().splitlines()[0])
    result = _cli("eval", str(trained / "best.pt"), "--json", str(tmp_path / "eval.json"))
    assert result.returncode == 0, result.stderr
    got = json.loads((tmp_path / "eval.json").read_text())
    assert (got["top1"], got["top5"], got["loss"]) == (record["test_top1"], record["test_top5"], record["test_loss"])
    reports = []
    for name in ("a", "b"):
        assert main(["energy-report", str(trained / "best.pt"), "--json", str(tmp_path / f"{name}.json")]) == 0
        reports.append(json.loads((tmp_path / f"{name}.json").read_text())["total"])
    assert reports[0] == reports[1]


def test_spike_table_is_per_stage_and_keeps_whole_names_at_80_columns(capsys):
    import io

    from rich.console import Console

    from snnres.models import create_model
    from snnres.train.monitor import count_spikes, print_spike_summary

    model = create_model("ms-resnet-cifar20", num_classes=10, T=2, in_channels=2)
    with count_spikes(model) as counter, torch.no_grad():
        model(torch.rand(2, 2, 2, 8, 8))
    layers = list(counter.neurons)
    assert len(layers) > 15
    outputs = {}
    for by in ("stages", "layers"):
        stream = io.StringIO()
        print_spike_summary(Console(file=stream, width=80), counter, by)
        outputs[by] = stream.getvalue()
    stage_rows = [line for line in outputs["stages"].splitlines() if line.startswith("│")]
    assert len(stage_rows) == len({name.split(".")[0] if not name.startswith("stages.") else
                                   ".".join(name.split(".")[:2]) for name in layers})
    assert "…" not in outputs["layers"] and all(name in outputs["layers"] for name in layers)
