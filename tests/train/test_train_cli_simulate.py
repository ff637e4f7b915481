"""`snnres simulate` on a recording of the checkpoint's data set, the sensor size from the checkpoint,
and the README's simulator snippet as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from snnres.cli import main
from snnres.sim import EventSimulator
from snnres.train import open_trained, read_checkpoint

README = Path(__file__).resolve().parents[2] / "README.md"


def test_sample_by_index_with_the_checkpoint_sensor(trained, capsys):
    assert main(["simulate", str(trained / "best.pt"), "--sample", "3"]) == 0
    text = capsys.readouterr().out
    ckpt = open_trained(trained / "best.pt")
    data = ckpt.dataset()
    expected = EventSimulator(ckpt.model).run(data.events(3), (16, 16, 2), ckpt.T)
    assert "synthetic-dvs test recording 3" in text and "sensor (16, 16, 2) (from the checkpoint" in text
    assert f"predicted class: {expected.prediction}" in text


def test_sensor_size_is_recorded_so_no_data_set_is_built_and_a_wrong_one_is_refused(trained, tmp_path, capsys):
    state = read_checkpoint(trained / "best.pt")
    assert state["data"]["sensor_size"] == [16, 16, 2] and state["data"]["input_shape"] == [2, 16, 16]
    # the data set it names is not on this machine: the recorded sensor is enough
    state["config"].update(dataset="nmnist", data_dir=str(tmp_path / "nowhere"))
    torch.save(state, tmp_path / "moved.pt")
    events = open_trained(trained / "best.pt").dataset().events(0)
    np.save(tmp_path / "e.npy", events)
    assert main(["simulate", str(tmp_path / "moved.pt"), "--events", str(tmp_path / "e.npy")]) == 0
    assert "sensor (16, 16, 2) (from the checkpoint" in capsys.readouterr().out
    assert main(["simulate", str(trained / "best.pt"), "--events", str(tmp_path / "e.npy"),
                 "--sensor-size", "128", "128", "2"]) == 2
    err = capsys.readouterr().err
    assert "--sensor-size (128, 128, 2) does not fit the model, trained on a (16, 16, 2) sensor" in err
    assert main(["simulate", str(trained / "best.pt"), "--sample", "999"]) == 2
    assert "has recordings 0..31" in capsys.readouterr().err


def test_export_takes_the_input_shape_from_the_checkpoint(trained, tmp_path, capsys):
    state = read_checkpoint(trained / "best.pt")
    state["config"].update(dataset="nmnist", data_dir=str(tmp_path / "nowhere"))
    torch.save(state, tmp_path / "moved.pt")
    assert main(["export", str(tmp_path / "moved.pt"), "-o", str(tmp_path / "m.nir")]) == 0
    assert "input (2, 16, 16) per time step" in capsys.readouterr().out


def test_readme_simulator_snippet_runs_as_written(capsys):
    text = README.read_text()
    snippet = re.search(r"<!-- simulator-snippet -->\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(snippet, "README simulator snippet", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert 0 <= int(printed[0]) < 10 and float(printed[1]) > 0


def test_readme_cpu_install_keeps_a_cpu_torch():
    from packaging.requirements import Requirement

    text = README.read_text()
    assert "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu" in text
    pyproject = (README.parent / "pyproject.toml").read_text()
    for name in ("torch", "torchvision"):
        spec = Requirement(re.search(rf'"({name}[<>=!~][^"]*)"', pyproject).group(1)).specifier
        installed = getattr(__import__(name), "__version__").split("+")[0]
        assert spec.contains(f"{installed}+cpu"), (name, spec)  # pip keeps the CPU build it finds
