"""Options: defaults < data set recipe < YAML file < flags."""

import pytest

from snnres.train.config import RECIPES, TrainConfig, build_config


def test_recipe_then_file_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: imagenet\nepochs: 3\nlr: 0.2\n")
    cfg = build_config({"lr": 0.05, "arch": None}, path)
    assert cfg.dataset == "imagenet"
    assert cfg.label_smoothing == RECIPES["imagenet"]["label_smoothing"] == 0.1  # from the recipe
    assert cfg.epochs == 3        # the file beats the recipe
    assert cfg.lr == 0.05         # the flag beats the file
    assert cfg.arch == TrainConfig.arch  # None means "not given"


def test_unknown_option_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochz: 3\n")
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['epochz'\]"):
        build_config({}, path)


def test_dataset_options_merge_with_the_recipe():
    cfg = build_config({"dataset_kwargs": {"num_samples": 64}})
    assert cfg.dataset == "synthetic-dvs"
    assert cfg.dataset_kwargs == {"num_samples": 64, "augment": True}
