"""``snnres.layers.fold``: the folded layer computes what the layer followed by its eval-mode BatchNorm computes."""

import pytest
import torch
from torch import nn

from snnres.layers import ThresholdScaledBatchNorm2d
from snnres.layers.fold import batchnorm_scale_shift, fold_batchnorm


def random_stats_(bn: nn.Module, generator: torch.Generator) -> nn.Module:
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=generator, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(n, generator=generator, dtype=torch.float64) + 0.1)
        if bn.affine:
            bn.weight.copy_(torch.randn(n, generator=generator, dtype=torch.float64))
            bn.bias.copy_(torch.randn(n, generator=generator, dtype=torch.float64))
    return bn.eval()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("norm", ["bn", "tdbn", "tdbn-no-affine", "bn-no-affine"])
def test_folded_conv_is_conv_then_batchnorm(bias, norm):
    g = torch.Generator().manual_seed(len(norm) + bias)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=bias).double()
    bn = {"bn": lambda: nn.BatchNorm2d(5, eps=1e-3), "bn-no-affine": lambda: nn.BatchNorm2d(5, affine=False),
          "tdbn": lambda: ThresholdScaledBatchNorm2d(5, v_threshold=0.5, alpha=1.5),
          "tdbn-no-affine": lambda: ThresholdScaledBatchNorm2d(5, v_threshold=0.5, alpha=1.5, affine=False)}[norm]()
    bn = random_stats_(bn.double(), g)
    x = torch.randn(2, 3, 6, 7, generator=g, dtype=torch.float64)
    weight, b = fold_batchnorm(conv.weight, conv.bias, bn)
    folded = nn.functional.conv2d(x, torch.from_numpy(weight), torch.from_numpy(b), padding=1)
    with torch.no_grad():
        torch.testing.assert_close(folded, bn(conv(x)), rtol=1e-12, atol=1e-12)


def test_folded_linear_is_linear_then_batchnorm1d():
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(4, 6).double()
    bn = random_stats_(nn.BatchNorm1d(6).double(), g)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    weight, b = fold_batchnorm(linear.weight, linear.bias, bn)
    with torch.no_grad():
        torch.testing.assert_close(x @ torch.from_numpy(weight).T + torch.from_numpy(b), bn(linear(x)),
                                   rtol=1e-12, atol=1e-12)
    assert weight.dtype == linear.weight.detach().numpy().dtype  # rounded once, to the weight's dtype


def test_hand_worked_scale_and_shift():
    """gamma 2, beta 1, mean 3, var 4 - eps: s = 2 / 2 = 1, b = 1 - 3 * 1 = -2."""
    bn = nn.BatchNorm1d(1, eps=0.25).eval()
    with torch.no_grad():
        bn.weight.fill_(2.0), bn.bias.fill_(1.0), bn.running_mean.fill_(3.0), bn.running_var.fill_(3.75)
    scale, shift = batchnorm_scale_shift(bn)
    assert scale.tolist() == [1.0] and shift.tolist() == [-2.0]


def test_errors_name_the_layer_and_the_fix():
    class Custom(ValueError):
        pass

    with pytest.raises(Custom, match=r"'stem.bn'.*no running statistics.*track_running_stats=True"):
        batchnorm_scale_shift(nn.BatchNorm2d(4, track_running_stats=False), "stem.bn", Custom)
    corrupt = nn.BatchNorm2d(3).eval()
    corrupt.running_var[1] = -1.0
    with pytest.raises(ValueError, match=r"'bn1'.*running_var \+ eps is not positive \(min -0.99999\)"):
        batchnorm_scale_shift(corrupt, "bn1")
    with pytest.raises(ValueError, match="BatchNorm has 4 channels but the layer before it has 5 outputs"):
        fold_batchnorm(torch.zeros(5, 2), None, nn.BatchNorm1d(4).eval())
