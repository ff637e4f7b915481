"""Threshold-scaled BN against the authors' tdBatchNorm (langfengQ/MLF-DSResNet, spike_layer_for_cifar10.py).

The oracle below is their layer's training-mode formula, written out here:
``y = alpha * Vth * (x - mean) / (sqrt(var) + eps) * lambda + beta`` with ``lambda`` initialised
to 1. Ours stores ``gamma = alpha * Vth * lambda`` and scales its gradient by ``(alpha * Vth)^2``,
so that SGD (momentum, weight decay) follows the same trajectory.
"""

import pytest
import torch
from torch import nn

from snnres.layers import ThresholdScaledBatchNorm2d, seq_tdbn

VTH = 0.6


class AuthorsTdBN(nn.Module):
    """Training-mode tdBN as in the authors' code (statistics only for the forward)."""

    def __init__(self, channels: int, alpha: float = 1.0, eps: float = 1e-5):
        super().__init__()
        self.alpha, self.eps = alpha, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        mean = x.mean([0, 2, 3], keepdim=True)
        var = x.var([0, 2, 3], keepdim=True, unbiased=False)
        x = self.alpha * VTH * (x - mean) / (torch.sqrt(var) + self.eps)
        return x * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def test_forward_equals_the_authors_layer():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5) * 2 + 1
    ours, theirs = ThresholdScaledBatchNorm2d(3, VTH), AuthorsTdBN(3)
    torch.testing.assert_close(ours.weight, torch.full((3,), VTH))
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_sgd_with_momentum_and_weight_decay_follows_the_authors_trajectory():
    torch.manual_seed(1)
    ours, theirs = ThresholdScaledBatchNorm2d(4, VTH), AuthorsTdBN(4)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    target = torch.randn(6, 4, 3, 3)
    for _ in range(5):
        x = torch.randn(6, 4, 3, 3)
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            ((model(x) - target) ** 2).mean().backward()
            opt.step()
    # gamma = alpha * Vth * lambda after every step, not only at the start
    torch.testing.assert_close(ours.weight.detach(), VTH * theirs.weight.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.bias.detach(), theirs.bias.detach(), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(ours.weight.detach(), torch.full((4,), VTH))  # it did move


def test_eval_mode_is_an_ordinary_batchnorm_for_folding():
    # export and the event simulator fold any BatchNorm2d from weight/bias/running stats
    bn = ThresholdScaledBatchNorm2d(2, VTH)
    assert isinstance(bn, nn.BatchNorm2d)
    bn(torch.randn(16, 2, 4, 4) * 3)
    bn.eval()
    x = torch.randn(4, 2, 4, 4)
    folded = (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
    folded = folded * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(bn(x), folded)


def test_non_affine_normalises_straight_to_the_threshold():
    # DVS-Gesture: tdBatchNorm(BatchNorm2d(2, affine=False)) on the event frames
    bn = seq_tdbn(2, VTH, affine=False)
    y = bn(torch.randn(3, 4, 2, 6, 6) * 5)
    assert list(bn.parameters()) == []
    torch.testing.assert_close(y.transpose(0, 2).reshape(2, -1).std(1, unbiased=False), torch.full((2,), VTH),
                               atol=1e-3, rtol=0)


def test_invalid_scale_is_refused():
    with pytest.raises(ValueError, match="alpha \\* v_threshold > 0"):
        ThresholdScaledBatchNorm2d(2, v_threshold=0.0)
