"""``simulate_command``: checkpoint + .npy events -> counts per layer and the class, exit codes."""

import numpy as np
import pytest

import snnres
from sim_testnets import random_conv_net, random_events
from snnres.sim import EventSimulator
from snnres.sim.cli import simulate_command

SENSOR = (12, 12, 2)


@pytest.fixture
def fake_checkpoint(monkeypatch):
    net = random_conv_net(np.random.default_rng(0), SENSOR, 1)
    info = {"model_args": {"arch": "test-net", "num_classes": 5, "T": 4, "in_channels": 2}, "config": {}}
    monkeypatch.setattr(snnres, "load_checkpoint", lambda path: (net, info))
    return net


def test_prints_counts_and_class(tmp_path, capsys, fake_checkpoint):
    events = random_events(np.random.default_rng(1), SENSOR, 400)
    path = tmp_path / "sample.npy"
    np.save(path, events)
    assert simulate_command("ckpt.pt", str(path), None, SENSOR) == 0
    text = capsys.readouterr().out
    expected = EventSimulator(fake_checkpoint).run(events, SENSOR, 4)
    assert f"predicted class: {expected.prediction}" in text
    assert "test-net" in text and "T=4" in text
    for name in expected.spikes_per_layer:
        assert f"\n{name} " in text


def test_sensor_size_inferred_and_errors(tmp_path, capsys, fake_checkpoint):
    events = random_events(np.random.default_rng(2), SENSOR, 400)
    events["x"][0], events["y"][0] = 11, 11  # the extent of the sensor
    path = tmp_path / "sample.npy"
    np.save(path, events)
    assert simulate_command("ckpt.pt", str(path), 3, None) == 0
    assert "inferred from the events" in capsys.readouterr().out
    assert simulate_command("ckpt.pt", str(tmp_path / "missing.npy"), None, SENSOR) == 2
    np.save(path, np.zeros((3, 4)))
    assert simulate_command("ckpt.pt", str(path), None, SENSOR) == 2
    assert "structured events" in capsys.readouterr().err


def test_cuda_device_without_a_gpu_is_a_clear_error(tmp_path, capsys, fake_checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    path = tmp_path / "sample.npy"
    np.save(path, random_events(np.random.default_rng(3), SENSOR, 100))
    assert simulate_command("ckpt.pt", str(path), None, SENSOR, device="cuda") == 2
    assert "GPU simulator cannot run" in capsys.readouterr().err
