"""Every registered model builds, takes both input kinds and returns [B, num_classes]."""

import pytest
import torch

from snnres.models import create_model, list_models

SMALL = {"vit-tiny": dict(img_size=16, patch_size=8), "vit-small": dict(img_size=16, patch_size=8),
         "vit-small-deep": dict(img_size=16, patch_size=8, depth=2)}
HEAVY = {"ms-resnet-cifar482", "ms-resnet104", "resnet104", "ms-resnet-cifar110", "resnet110",
         "sew-resnet110", "spiking-resnet110", "sew-resnet50", "spiking-resnet50", "resnet50", "ds-resnet68",
         "ds-resnet56", "ms-resnet34", "sew-resnet34", "spiking-resnet34", "resnet34",
         # deeper members of families whose shallow members are tested (CI time)
         "ds-resnet32", "ds-resnet44", "resnet56", "sew-resnet56", "spiking-resnet56", "ms-resnet-cifar56",
         "ms-resnet-cifar44", "ms-resnet-cifar32", "sew-resnet32", "spiking-resnet32"}


@pytest.mark.parametrize("name", [n for n in list_models() if n not in HEAVY])
def test_static_and_event_inputs(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, T=2, in_channels=2, **SMALL.get(name, {}))
    static = torch.rand(2, 2, 16, 16)
    events = torch.rand(2, 3, 2, 16, 16)  # B=2 equals the model's T: said to be batch-first
    assert model(static).shape == (2, 7)
    out = model(events, time_first=False)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="ms-resnet18"):
        create_model("ms-resnet-18")
    with pytest.raises(ValueError, match="6n\\+2"):
        create_model("ms-resnet-cifar21")


def test_wrong_input_shape_names_expected_and_given():
    model = create_model("ms-resnet-cifar8", T=2, in_channels=3)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\].*\(2, 5, 8, 8\)"):
        model(torch.rand(2, 5, 8, 8))
    with pytest.raises(ValueError, match="3-d"):
        model(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="floating point"):
        model(torch.ones(1, 3, 8, 8, dtype=torch.uint8))


def test_depth_families_parse_any_valid_depth():
    model = create_model("ms-resnet-cifar26")  # n = 4, not in the listed examples
    assert [len(stage) for stage in model.stages] == [4, 4, 4]


def test_register_adds_a_name_that_create_model_builds():
    from snnres.models import register
    from snnres.models.registry import _MODELS

    @register("test-tiny-net")
    def tiny(num_classes=10, T=4, in_channels=3, hidden=3):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))

    try:
        assert "test-tiny-net" in list_models()
        assert create_model("test-tiny-net", num_classes=4)(torch.rand(2, 3, 2, 2)).shape == (2, 4)
    finally:
        _MODELS.pop("test-tiny-net")


@pytest.mark.parametrize("name", ["ds-resnet21", "spiking-resnet19", "sew-resnet4", "resnet33"])
def test_invalid_depths_are_refused_clearly(name):
    with pytest.raises(ValueError, match="6n\\+2"):
        create_model(name)


@pytest.mark.parametrize("name", ["ms-resnet-cifar8", "ds-resnet8", "sew-resnet8", "spiking-resnet8", "resnet20"])
def test_zero_init_residual_is_an_option_everywhere(name):
    model = create_model(name, zero_init_residual=True)
    blocks = model.blocks() if hasattr(model, "blocks") else list(model.net.stages)
    last = [b.last_bn.module if hasattr(b, "last_bn") else b.bn2 for b in blocks]
    assert all(torch.all(bn.weight == 0) for bn in last)


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    model = create_model("ms-resnet-cifar8", T=2, backend="torch").train()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
