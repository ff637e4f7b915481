"""``snnres convert``: checkpoints in the authors' key layouts (written by the test-only rebuilds in
``official_nets.py``, saved the way each training script saves them) become snnres models with the
authors' outputs; every tensor is used, and bad files get errors that say what is wrong."""

from __future__ import annotations

import argparse

import pytest
import torch

import official_nets as official
from snnres.convert import LAYOUTS, ConversionError, convert_checkpoint
from snnres.convert.convert import map_state
from snnres.models import create_model
from snnres.train import load_checkpoint


def save_ms(net, path):
    """train_amp.py: ``torch.save(net.state_dict())`` of the DDP model (``module.`` prefixes)."""
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)


def save_mlf(net, path):
    """train_for_*.py: ``{"model": state_dict, "epoch": epoch}``."""
    torch.save({"model": net.state_dict(), "epoch": 110}, path)


def save_sew(net, path, connect="ADD"):
    """imagenet/train.py: model, optimizer, scheduler, epoch and the argparse Namespace."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 319, "max_test_acc1": 63.2,
                "args": argparse.Namespace(T=4, connect_f=connect, model="sew_resnet18")}, path)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def _outputs_agree(ours, theirs, x):
    ours.eval(), theirs.eval()
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    return a


def test_ms_resnet18(tmp_path):
    torch.manual_seed(0)
    theirs = official.randomise_bn_(official.ms_resnet(18, num_classes=10, T=3))
    save_ms(theirs, tmp_path / "resnet18-120-best.pth")
    model, ckpt = convert_checkpoint(tmp_path / "resnet18-120-best.pth", "official-ms-resnet", T=3)
    assert ckpt["model_args"]["arch"] == "ms-resnet18" and ckpt["model_args"]["kwargs"]["convention"] == "official"
    assert n_params(model) == n_params(theirs)
    _outputs_agree(model, theirs, torch.randn(2, 3, 32, 32) * 2)
    assert create_model("ms-resnet18").blocks()[0].neuron1.params.fire == "gt"


def test_ms_resnet_defaults_to_the_papers_T(tmp_path):
    theirs = official.ms_resnet(18, num_classes=5)
    save_ms(theirs, tmp_path / "a.pth")
    _, ckpt = convert_checkpoint(tmp_path / "a.pth", "official-ms-resnet")
    assert ckpt["model_args"]["T"] == 6 and ckpt["config"]["dataset"] == "imagenet"


@pytest.mark.parametrize("depth", [34, 104])
def test_ms_resnet_34_and_104_map_every_tensor(depth):
    # The full-size layouts, on the meta device (no memory): every key placed, every shape equal.
    with torch.device("meta"):
        theirs = official.ms_resnet(depth)
        state = theirs.state_dict()
        target = LAYOUTS["official-ms-resnet"](state, {})
        ours = create_model(target.arch, num_classes=1000, T=target.T, **target.kwargs)
    assert target.arch == f"ms-resnet{depth}" and target.T == (5 if depth == 104 else 6)
    assert len(map_state(state, target, ours, "official-ms-resnet")) == len(ours.state_dict())
    assert n_params(ours) == n_params(theirs)


@pytest.mark.slow
def test_ms_resnet104_outputs(tmp_path):
    torch.manual_seed(1)
    theirs = official.randomise_bn_(official.ms_resnet(104, num_classes=10, T=2))
    save_ms(theirs, tmp_path / "resnet104.pth")
    model, _ = convert_checkpoint(tmp_path / "resnet104.pth", "official-ms-resnet", T=2)
    _outputs_agree(model, theirs, torch.randn(1, 3, 32, 32) * 2)


MLF_CASES = {  # authors' script: (rebuild, input, expected arch, kwargs, data set, T)
    "cifar10": (lambda: official.DSResNet((3, 3, 3), T=4), (2, 3, 8, 8), "ds-resnet20", "cifar10", 4),
    "cifar10-dvs": (lambda: official.DSResNet((2, 2, 2), (32, 64, 128), 2, T=10), (2, 10, 2, 8, 8), "ds-resnet14",
                    "cifar10-dvs", 10),
    "dvs-gesture": (lambda: official.DSResNet((3, 3, 3), (16, 32, 64), 2, 11, T=40, input_norm=True),
                    (1, 40, 2, 8, 8), "ds-resnet20", "dvs-gesture", 40),
}


@pytest.mark.parametrize("case", list(MLF_CASES))
def test_ds_resnet(tmp_path, case):
    make, shape, arch, dataset, T = MLF_CASES[case]
    torch.manual_seed(2)
    theirs = official.randomise_bn_(make())
    save_mlf(theirs, tmp_path / "result.pth")
    model, ckpt = convert_checkpoint(tmp_path / "result.pth", "official-mlf")
    args = ckpt["model_args"]
    assert (args["arch"], args["T"], ckpt["config"]["dataset"]) == (arch, T, dataset)
    assert ckpt["converted_from"]["epoch"] == 110
    assert n_params(model) == n_params(theirs)
    x = torch.rand(shape) * 2 if len(shape) == 5 else torch.randn(shape)
    _outputs_agree(model, theirs, x)


def test_ds_resnet_gradients_in_training_mode(tmp_path):
    # Training mode: batch statistics, the authors' running averages, gradients through the MLF resets.
    torch.manual_seed(3)
    theirs = official.DSResNet((1, 1, 1), (8, 16, 32), 2, T=3)
    save_mlf(theirs, tmp_path / "r.pth")
    ours, _ = convert_checkpoint(tmp_path / "r.pth", "official-mlf", T=3)
    ours.train(), theirs.train()
    x = torch.rand(4, 3, 2, 8, 8) * 2
    grads = []
    for net in (ours, theirs):
        net.zero_grad()
        out = net(x)
        out.square().sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-4, atol=1e-5)
    for g_ours, g_theirs in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-3, atol=1e-5)
    bn_ours, bn_theirs = ours.stem[1].module, theirs.bn1.bn
    torch.testing.assert_close(bn_ours.running_var, bn_theirs.running_var, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("connect", ["ADD", "IAND"])
def test_sew_resnet18(tmp_path, connect):
    torch.manual_seed(4)
    theirs = official.randomise_bn_(official.SEWResNet(18, num_classes=10, connect=connect))
    save_sew(theirs, tmp_path / "checkpoint_max_test_acc1.pth", connect.lower())
    model, ckpt = convert_checkpoint(tmp_path / "checkpoint_max_test_acc1.pth", "official-sew")
    assert ckpt["model_args"]["kwargs"] == {"connect": connect} and ckpt["model_args"]["T"] == 4
    assert n_params(model) == n_params(theirs)
    _outputs_agree(model, theirs, torch.randn(2, 3, 32, 32) * 3)


def test_sew_resnet50_maps_every_tensor():
    with torch.device("meta"):
        theirs = official.SEWResNet(50)
        state = theirs.state_dict()
        target = LAYOUTS["official-sew"](state, {})
        ours = create_model(target.arch, num_classes=1000, T=4, **target.kwargs)
    assert target.arch == "sew-resnet50"
    assert len(map_state(state, target, ours, "official-sew")) == len(ours.state_dict())


def test_converted_checkpoint_loads_like_any_other(tmp_path):
    from snnres.convert import write_converted

    theirs = official.randomise_bn_(official.DSResNet((1, 1, 1), (8, 16, 32), 2, T=2))
    save_mlf(theirs, tmp_path / "r.pth")
    model, _ = write_converted(tmp_path / "r.pth", "official-mlf", tmp_path / "out.pt", T=2)
    loaded, info = load_checkpoint(tmp_path / "out.pt")
    x = torch.rand(2, 2, 2, 8, 8)
    loaded.eval()
    torch.testing.assert_close(loaded(x), theirs.eval()(x), rtol=1e-4, atol=1e-5)
    assert info["converted_from"]["layout"] == "official-mlf"


def test_wrong_layout_is_named(tmp_path):
    save_ms(official.ms_resnet(18, num_classes=5), tmp_path / "ms.pth")
    with pytest.raises(ConversionError, match="not in the official-mlf layout.*conv1.0.weight"):
        convert_checkpoint(tmp_path / "ms.pth", "official-mlf")


def test_extra_missing_and_misshapen_tensors_are_listed(tmp_path):
    theirs = official.DSResNet((1, 1, 1), (8, 16, 32), 2, T=2)
    state = theirs.state_dict()
    state["layer1.execute.0.extra.weight"] = torch.zeros(3)
    del state["layer2.execute.0.bn2.bn.bias"]
    state["voting.bias"] = torch.zeros(7)
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(tmp_path / "bad.pth", "official-mlf")
    text = str(info.value)
    assert "1 tensors of the checkpoint have no place in the model (e.g. layer1.execute.0.extra.weight)" in text
    assert "stages.1.0.last_bn.module.bias" in text and "get no value" in text
    assert "voting.bias (7,) -> head.fc.bias (10,)" in text


def test_unreadable_and_odd_files(tmp_path):
    with pytest.raises(ConversionError, match="no checkpoint at"):
        convert_checkpoint(tmp_path / "none.pth", "official-sew")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConversionError, match="cannot be read as a PyTorch checkpoint"):
        convert_checkpoint(tmp_path / "junk.pth", "official-sew")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(ConversionError, match="holds no state dict"):
        convert_checkpoint(tmp_path / "empty.pth", "official-sew")
    with pytest.raises(ConversionError, match="unknown layout 'official-vgg'"):
        convert_checkpoint(tmp_path / "empty.pth", "official-vgg")


def test_sew_plain_spiking_resnet_is_refused(tmp_path):
    state = official.SEWResNet(18).state_dict()
    state = {k.replace("downsample.0.module.", "downsample.module."): v for k, v in state.items()}
    torch.save({"model": state}, tmp_path / "spiking_resnet18.pth")
    with pytest.raises(ConversionError, match="plain Spiking ResNet"):
        convert_checkpoint(tmp_path / "spiking_resnet18.pth", "official-sew")


def test_image_checkpoints_record_their_input(tmp_path):
    save_ms(official.ms_resnet(18, num_classes=5), tmp_path / "a.pth")
    _, ckpt = convert_checkpoint(tmp_path / "a.pth", "official-ms-resnet", dataset_kwargs={"image_size": 288,
                                                                                          "resize": 320})
    assert ckpt["data"] == {"dataset": "imagenet", "input_shape": [3, 288, 288], "in_channels": 3, "sensor_size": None}
    assert ckpt["config"]["dataset_kwargs"] == {"image_size": 288, "resize": 320}
