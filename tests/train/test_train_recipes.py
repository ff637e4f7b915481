"""The papers' recipes (``--recipe``), per-epoch learning-rate schedules against PyTorch's own
schedulers, and weight decay on every parameter."""

import math

import pytest
import torch
import yaml

from snnres.models import create_model
from snnres.train import build_config
from snnres.train.loop import lr_schedule, parameter_groups
from snnres.train.recipes import PAPER_RECIPES


@pytest.mark.parametrize("name", list(PAPER_RECIPES))
def test_every_recipe_is_a_valid_config_of_a_buildable_model(name):
    cfg = build_config({"recipe": name})
    assert cfg.recipe == name and cfg.arch == PAPER_RECIPES[name]["options"]["arch"]
    in_channels = 2 if "dvs" in cfg.dataset else 3
    with torch.device("meta"):  # ms-resnet104 has 77M parameters
        model = create_model(cfg.arch, num_classes=10, T=cfg.T, in_channels=in_channels, **cfg.model_kwargs)
    assert sum(p.numel() for p in model.parameters()) > 0
    if cfg.arch.startswith(("ms-", "ds-")):
        assert cfg.model_kwargs["convention"] == "official"
    assert cfg.lr_schedule in ("cosine-epoch", "step") and cfg.warmup_epochs == 0


def test_the_authors_numbers():
    ds_dvs = build_config({"recipe": "ds-resnet14-cifar10-dvs"})
    assert (ds_dvs.weight_decay, ds_dvs.weight_decay_on, ds_dvs.T, ds_dvs.epochs) == (1e-3, "all", 10, 100)
    assert (ds_dvs.lr_schedule, ds_dvs.lr_step_epochs, ds_dvs.lr_step_gamma) == ("step", 40, 0.1)
    ms18 = build_config({"recipe": "ms-resnet18-imagenet"})
    assert (ms18.T, ms18.weight_decay, ms18.weight_decay_on, ms18.label_smoothing, ms18.epochs) == (6, 1e-5, "all", 0.1, 125)
    assert build_config({"recipe": "ms-resnet104-imagenet"}).T == 5
    assert build_config({"recipe": "sew-resnet18-imagenet"}).weight_decay == 0.0
    # without a recipe, snnres's own data-set defaults stay
    plain = build_config({"dataset": "cifar10-dvs"})
    assert (plain.weight_decay, plain.weight_decay_on, plain.lr_schedule) == (1e-4, "weights", "cosine")


def test_precedence_flags_over_file_over_recipe_over_data_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"recipe": "ds-resnet20-cifar10", "epochs": 7, "model_kwargs": {"widths": [8, 16, 32]}}))
    cfg = build_config({"lr": 0.05}, path)
    assert (cfg.arch, cfg.dataset, cfg.epochs, cfg.lr, cfg.batch_size) == ("ds-resnet20", "cifar10", 7, 0.05, 64)
    assert cfg.model_kwargs == {"convention": "official", "widths": [8, 16, 32]}  # merged key by key


def test_unknown_recipe_names_the_choices():
    with pytest.raises(ValueError, match="unknown recipe 'ms-resnet18-imgnet'.*Did you mean ms-resnet18-imagenet"):
        build_config({"recipe": "ms-resnet18-imgnet"})


def _torch_lrs(make, epochs):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "initial_lr": 0.1}], lr=0.1)
    scheduler = make(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return lrs


def _ours(name, epochs, steps, **kw):
    factor = lr_schedule(name, epochs, steps, **kw)
    per_step = [0.1 * factor(s) for s in range(epochs * steps)]
    assert all(per_step[e * steps] == per_step[e * steps + steps - 1] for e in range(epochs))  # constant per epoch
    return per_step[::steps]


def test_step_schedule_is_steplr():
    ours = _ours("step", 110, 3, step_epochs=40, step_gamma=0.1)
    theirs = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 40, 0.1), 110)
    torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), torch.tensor(theirs, dtype=torch.float64),
                               rtol=1e-12, atol=0)
    assert ours[39] == pytest.approx(0.1) and ours[40] == pytest.approx(0.01) and ours[80] == pytest.approx(0.001)


def test_cosine_epoch_is_cosine_annealing():
    ours = _ours("cosine-epoch", 320, 2)
    theirs = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=320), 320)
    torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), torch.tensor(theirs, dtype=torch.float64),
                               rtol=1e-9, atol=1e-12)


def test_ms_resnet_offset_follows_their_scheduler():
    # Their CosineAnnealingLR(T_max=125, last_epoch=0) runs its last epoch at lr 0.
    ours = _ours("cosine-epoch", 125, 1, epoch_offset=1)
    theirs = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=125, eta_min=0, last_epoch=0), 125)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1.6e-5 and ours[-1] == theirs[-1] == 0.0


def test_cosine_with_warmup_is_unchanged():
    factor = lr_schedule("cosine", 2, 5, warmup_steps=2)
    assert [factor(s) for s in (0, 1)] == [0.5, 1.0]
    assert factor(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))


def test_weight_decay_on_all_parameters_shrinks_batchnorm_too():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    for on, bn_after in (("weights", 1.0), ("all", 1.0 - 0.1 * 0.5)):
        m = type(model)(*[type(layer)(*args) for layer, args in ((model[0], (1, 2, 3)), (model[1], (2,)))])
        opt = torch.optim.SGD(parameter_groups(m, 0.5, on), lr=0.1)
        for p in m.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        assert torch.allclose(m[1].weight, torch.full((2,), bn_after)), on
    with pytest.raises(ValueError, match="'weights'.*'all'"):
        parameter_groups(model, 0.1, "bn")
