"""sweep-depth trains each cell once and resumes; diagnose profiles blocks through depth."""

import json

import pytest

from snnres.cli import main
from snnres.study import arch_name, diagnose


def test_arch_names_per_family():
    assert arch_name("ms-resnet-cifar", 20) == "ms-resnet-cifar20"
    assert arch_name("spiking-resnet", 56) == "spiking-resnet56"
    with pytest.raises(ValueError, match="unknown family"):
        arch_name("vgg", 16)


def test_sweep_writes_results_and_plot_and_skips_finished_cells(tmp_path, capsys):
    args = ["sweep-depth", "--family", "ms-resnet-cifar,spiking-resnet", "--depths", "8,14", "--epochs", "1",
            "--batch-size", "8", "--T", "2", "--max-steps-per-epoch", "2", "--dataset-arg", "num_samples=16",
            "--dataset-arg", "size=16", "--out", str(tmp_path)]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(results["cells"]) == ["ms-resnet-cifar/14", "ms-resnet-cifar/8", "spiking-resnet/14",
                                        "spiking-resnet/8"]
    cell = results["cells"]["spiking-resnet/14"]
    assert cell["arch"] == "spiking-resnet14" and 0 <= cell["train_top1"] <= 1 and cell["parameters"] > 0
    assert (tmp_path / "degradation.png").read_bytes()[:4] == b"\x89PNG"
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/last.pt")}
    capsys.readouterr()
    assert main(args) == 0  # a rerun trains nothing
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/last.pt")} == stamps
    assert capsys.readouterr().out.count("(done before)") == 4


def test_diagnose_flat_for_ms_resnet_and_not_for_plain():
    ms = diagnose("ms-resnet-cifar56", steps=1, batch_size=2)
    plain = diagnose("spiking-resnet56", steps=1, batch_size=2)
    assert ms["blocks"] == plain["blocks"] == 27
    g = ms["init"]["grad_norm"]
    assert max(g) / min(g) < 1.5
    p = plain["init"]["grad_norm"]
    assert p[0] / p[-1] < 0.5  # IF neurons: the backward signal shrinks towards the input
    assert all(0 <= r <= 1 for r in ms["init"]["firing_rate"])


def test_diagnose_cli_writes_json_and_png(tmp_path):
    assert main(["diagnose", "--arch", "ms-resnet-cifar20", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "diagnose-ms-resnet-cifar20.json").read_text())
    assert len(data["init"]["grad_norm"]) == 9
    assert (tmp_path / "diagnose-ms-resnet-cifar20.png").read_bytes()[:4] == b"\x89PNG"


def _sweep_args(out, *extra):
    return ["sweep-depth", "--depths", "8", "--epochs", "1", "--batch-size", "8", "--T", "2",
            "--max-steps-per-epoch", "1", "--dataset-arg", "num_samples=16", "--dataset-arg", "size=16",
            "--out", str(out), *extra]


def test_sweeps_sharing_an_out_folder_merge_their_cells(tmp_path):
    # two processes, one family each, the second started before the first recorded anything
    from snnres.study import sweep as sweep_module
    from snnres.train import build_config

    base = build_config({**sweep_module.SWEEP_RECIPE, "epochs": 1, "batch_size": 8, "T": 2,
                         "max_steps_per_epoch": 1, "dataset_kwargs": {"num_samples": 16, "size": 16}})
    first = sweep_module.sweep_depth(["ms-resnet-cifar"], [8], base, tmp_path)
    assert list(first["cells"]) == ["ms-resnet-cifar/8"]
    stale = {"recipe": base.to_dict(), "cells": {}}  # what a process that started earlier holds
    merged = sweep_module._record_cell(tmp_path / "results.json", stale["recipe"], "resnet/8", {"depth": 8})
    assert sorted(merged["cells"]) == ["ms-resnet-cifar/8", "resnet/8"]
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert sorted(on_disk["cells"]) == ["ms-resnet-cifar/8", "resnet/8"]


def test_sweep_refuses_another_recipe_in_the_same_folder(tmp_path, capsys):
    assert main(_sweep_args(tmp_path, "--family", "ms-resnet-cifar")) == 0
    recipe = json.loads((tmp_path / "results.json").read_text())["recipe"]
    assert recipe["optimizer"] == "adamw" and recipe["model_kwargs"] == {"first_stride": 2}
    assert main(_sweep_args(tmp_path, "--family", "spiking-resnet", "--lr", "0.1")) == 2  # a user error
    assert "another recipe (lr: 0.002 there, 0.1 now)" in capsys.readouterr().err
