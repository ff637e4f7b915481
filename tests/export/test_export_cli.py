"""``export_command``: checkpoint -> .nir file, exit codes, summary (the model loader is stubbed)."""

from __future__ import annotations

from functools import partial

import nir
import pytest
import torch
from nir_testnets import PlainSNN, randomize_batchnorm

import snnres
from snnres.export import from_nir
from snnres.export.cli import export_command
from snnres.neurons import LIF


def _stub_checkpoint(monkeypatch, model, config=None):
    info = {"model_args": {"arch": "plain-test", "num_classes": 5, "T": model.T, "in_channels": 2},
            "config": config or {}}
    monkeypatch.setattr(snnres, "load_checkpoint", lambda path: (model, info))


def test_export_command_writes_a_readable_file(monkeypatch, tmp_path, capsys):
    model = randomize_batchnorm(PlainSNN().double())
    _stub_checkpoint(monkeypatch, model)
    out = tmp_path / "sub" / "model.nir"
    assert export_command("ckpt.pt", "nir", str(out), 1e-3, False, input_shape=(2, 8, 8)) == 0
    graph = nir.read(out)
    assert graph.metadata["dt"] == 1e-3 and graph.metadata["T"] == 4
    printed = capsys.readouterr().out
    assert "plain-test" in printed and "LIF 2" in printed and "dt=0.001" in printed
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(from_nir(graph)(x), model(x), rtol=1e-9, atol=1e-9)


def test_export_command_input_shape_from_the_dataset(monkeypatch, tmp_path):
    model = PlainSNN(size=16)
    _stub_checkpoint(monkeypatch, model, {"dataset": "synthetic-dvs", "dataset_kwargs": {"size": 16, "num_samples": 4}})
    pytest.importorskip("snnres.data")
    code = export_command("ckpt.pt", "nir", str(tmp_path / "m.nir"), 1e-4, False)
    assert code == 0
    assert tuple(nir.read(tmp_path / "m.nir").nodes["input"].input_type["input"]) == (2, 16, 16)


def test_export_command_errors(monkeypatch, tmp_path, capsys):
    model = PlainSNN(neuron=partial(LIF, v_reset=None))
    _stub_checkpoint(monkeypatch, model)
    assert export_command("c.pt", "onnx", str(tmp_path / "m"), 1e-4, False, (2, 8, 8)) == 2
    assert export_command("c.pt", "nir", str(tmp_path / "m.nir"), 1e-4, False, (2, 8, 8)) == 2
    assert "soft reset" in capsys.readouterr().err and not (tmp_path / "m.nir").exists()
    with pytest.warns(UserWarning):
        assert export_command("c.pt", "nir", str(tmp_path / "m.nir"), 1e-4, True, (2, 8, 8)) == 0
    assert "LOSSY" in capsys.readouterr().out
    assert export_command("c.pt", "nir", str(tmp_path / "n.nir"), 1e-4, False) == 2  # no data set, no shape
    assert "--input-shape" in capsys.readouterr().err
