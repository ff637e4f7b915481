"""``snnres convert`` end to end: an authors' DS-ResNet checkpoint (CIFAR10-DVS layout) becomes an
snnres checkpoint that ``eval``, ``energy-report``, ``export`` and ``simulate`` take."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import official_nets as official
from snnres.cli import main
from snnres.data import make_dataset
from snnres.data.events import EVENT_DTYPE
from snnres.sim import EventSimulator
from snnres.train import load_checkpoint

DATA = ["--dataset", "synthetic-dvs", "--dataset-arg", "size=16", "--dataset-arg", "num_samples=4"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("convert")
    torch.manual_seed(0)
    theirs = official.randomise_bn_(official.DSResNet((1, 1, 1), (8, 16, 32), 2, num_classes=10, T=4))
    torch.save({"model": {f"module.{k}": v for k, v in theirs.state_dict().items()}, "epoch": 100},
               folder / "result_dvscifar10.pth")
    out = folder / "ds.pt"
    assert main(["convert", "--from", "official-mlf", str(folder / "result_dvscifar10.pth"), "-o", str(out),
                 "--T", "4", *DATA]) == 0
    return folder, out, theirs.eval()


def test_convert_prints_what_it_made(converted, capsys):
    folder, out, _ = converted
    assert main(["convert", "--from", "official-mlf", str(folder / "result_dvscifar10.pth"), "-o",
                 str(folder / "again.pt"), "--T", "4"]) == 0
    text = capsys.readouterr().out
    assert "all used" in text and "ds-resnet8" in text and "T=4" in text


def test_eval_matches_the_authors_network(converted, capsys):
    _, out, theirs = converted
    assert main(["eval", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    data = make_dataset("synthetic-dvs", train=False, T=4, size=16, num_samples=4)
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.tensor([data[i][1] for i in range(len(data))])
    with torch.no_grad():
        top1 = (theirs(x).argmax(1) == y).float().mean().item()
    assert f"top-1 {top1:.4f}" in printed
    model, info = load_checkpoint(out)
    torch.testing.assert_close(model.eval()(x), theirs(x), rtol=1e-4, atol=1e-5)


def test_energy_report_and_export(converted, tmp_path, capsys):
    _, out, _ = converted
    assert main(["energy-report", str(out), "--device", "cpu", "--json", str(tmp_path / "e.json")]) == 0
    assert (tmp_path / "e.json").is_file()
    assert main(["export", str(out), "--format", "nir", "-o", str(tmp_path / "m.nir")]) == 0
    import nir

    graph = nir.read(tmp_path / "m.nir")
    levels = [n for n in graph.nodes.values() if type(n).__name__ == "LIF"]
    assert levels and all(n.metadata.get("fire") in ("gt", b"gt") for n in levels)  # the authors' u > V_th


def test_simulate(converted, capsys):
    _, out, _ = converted
    rng = np.random.default_rng(1)
    events = np.zeros(600, dtype=EVENT_DTYPE)
    events["x"], events["y"] = rng.integers(0, 16, 600), rng.integers(0, 16, 600)
    events["p"] = rng.integers(0, 2, 600).astype(bool)
    events["t"] = np.sort(rng.integers(0, 10_000, 600))
    path = out.parent / "sample.npy"
    np.save(path, events)
    assert main(["simulate", str(out), "--events", str(path), "--sensor-size", "16", "16", "2"]) == 0
    model, _ = load_checkpoint(out)
    expected = EventSimulator(model.eval()).run(events, (16, 16, 2), 4)
    assert f"predicted class: {expected.prediction}" in capsys.readouterr().out


def test_convert_errors_exit_2(tmp_path, capsys):
    torch.save({"model": {"conv1.weight": torch.zeros(3)}}, tmp_path / "x.pth")
    assert main(["convert", "--from", "official-sew", str(tmp_path / "x.pth"), "-o", str(tmp_path / "o.pt")]) == 2
    assert "snnres convert: no 'fc.weight'" in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()
