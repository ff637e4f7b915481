"""`snnres train` / `eval` / `energy-report` end to end on synthetic-dvs with tiny settings."""

import json
import os
from pathlib import Path

import pytest
import torch

from snnres.cli import main
from snnres.train import TrainConfig, TrainingDiverged, read_checkpoint, train

TINY = ["--arch", "ms-resnet-cifar8", "--dataset", "synthetic-dvs", "--T", "4", "--batch-size", "8",
        "--lr", "0.05", "--dataset-arg", "num_samples=32", "--dataset-arg", "size=16"]


def tiny_config(out: Path, epochs: int, **kw) -> TrainConfig:
    return TrainConfig(arch="ms-resnet-cifar8", dataset="synthetic-dvs", T=4, batch_size=8, lr=0.05,
                       epochs=epochs, out=str(out), dataset_kwargs={"num_samples": 32, "size": 16}, **kw)


def test_cli_train_then_eval_and_energy_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    for name in ("config.yaml", "log.jsonl", "last.pt", "best.pt"):
        assert (out / name).is_file(), name
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 1 and 0.0 <= record["test_top1"] <= 1.0
    assert "spikes per neuron" in capsys.readouterr().out

    assert main(["eval", str(out / "last.pt")]) == 0
    assert "top-1" in capsys.readouterr().out

    report, plot = tmp_path / "energy.json", tmp_path / "energy.png"
    assert main(["energy-report", str(out / "last.pt"), "--max-batches", "1", "--json", str(report),
                 "--plot", str(plot)]) == 0
    data = json.loads(report.read_text())
    assert data["total"]["sops"] > 0 and data["total"]["ann_energy_pj"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "SOPs" in capsys.readouterr().out

    # The event-driven simulator's counts agree with the dense report's. Not bit for bit: the
    # simulator folds BatchNorm into the weights, which moves rounding, and a membrane within
    # rounding of its threshold can flip (tests/sim checks exact equality on exact weights).
    sim_json = tmp_path / "energy-sim.json"
    assert main(["energy-report", str(out / "last.pt"), "--max-batches", "1", "--event-driven",
                 "--json", str(sim_json)]) == 0
    sim = json.loads(sim_json.read_text())
    assert sim["sops"] == pytest.approx(data["total"]["sops"], rel=0.02)
    if not torch.cuda.is_available():  # asking for the GPU simulator without a GPU: a clear error
        capsys.readouterr()
        assert main(["energy-report", str(out / "last.pt"), "--max-batches", "1", "--event-driven",
                     "--device", "cuda"]) == 2
        assert "--device cuda" in capsys.readouterr().err


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


def test_resume_is_exact(tmp_path, monkeypatch):
    train(tiny_config(tmp_path / "straight", epochs=2))

    # The same 2-epoch run, stopped (Ctrl-C / SIGTERM) once epoch 1 is done, then resumed.
    import snnres.train.run as run

    real_epoch, calls = run.train_epoch, []

    def stop_before_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(run, "train_epoch", stop_before_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path / "split", epochs=2))
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 1
    train(tiny_config(tmp_path / "split", epochs=2, resume=str(tmp_path / "split" / "last.pt")),
          explicit={"resume"})
    straight, split = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "split" / "last.pt")
    assert straight.keys() == split.keys()
    for key in straight:
        assert torch.equal(straight[key], split[key]), key


def test_resume_from_another_architecture_leaves_the_run_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code = main(["train", *TINY[2:], "--arch", "ms-resnet-cifar14", "--epochs", "2", "--out", str(out),
                 "--resume", str(out / "last.pt")])
    assert code == 2
    assert "ms-resnet-cifar8 checkpoint but --arch ms-resnet-cifar14" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_corrupt_checkpoint_is_reported(tmp_path, capsys):
    bad = tmp_path / "last.pt"
    bad.write_bytes(os.urandom(100))
    assert main(["eval", str(bad)]) == 2
    assert "not a readable snnres checkpoint" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1))
    good = _weights(out / "last.pt")
    import snnres.train.loop as loop

    real = loop.F.cross_entropy
    monkeypatch.setattr(loop.F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(TrainingDiverged, match="at epoch 2, step 1 of 4.*last.pt holds the state before that step"):
        train(tiny_config(out, epochs=2, resume=str(out / "last.pt")), explicit={"epochs", "resume"})
    after = _weights(out / "last.pt")
    assert all(torch.equal(good[k], after[k]) for k in good)


def test_unknown_arch_and_dataset_suggest_close_names(capsys):
    assert main(["train", "--arch", "ms-resnet-18", "--epochs", "1"]) == 2
    assert "ms-resnet18" in capsys.readouterr().err
    assert main(["train", "--dataset", "synthetic-dsv", "--epochs", "1"]) == 2
    assert "synthetic-dvs" in capsys.readouterr().err


@pytest.mark.slow
def test_compile_option_trains(tmp_path):
    # torch.compile around the fused neurons: dynamo breaks the graph at the numba kernel.
    out = tmp_path / "compiled"
    assert main(["train", "--arch", "spiking-cnn", "--compile", "--epochs", "1", "--max-steps-per-epoch", "2",
                 "--batch-size", "8", "--T", "2", "--dataset-arg", "num_samples=16", "--dataset-arg", "size=16",
                 "--out", str(out)]) == 0
    assert read_checkpoint(out / "last.pt")["epoch"] == 1
