"""tdBN against the authors' tdBatchNorm (langfengQ/MLF-DSResNet, spike_layer_for_cifar10.py) and
SpikingJelly's ThresholdDependentBatchNorm2d, and the eps placement worked by hand.

The first oracle is the authors' formula (``official_nets.TdBN``), statistics and running averages
included: ``y = alpha * Vth * (x - mean) / (sqrt(var) + eps) * lambda + beta``, ``lambda`` starting
at 1, the running variance updated as ``f * var * n / (n - 1) + (1 - f) * running_var``.
"""

import math

import pytest
import torch
from torch import nn

from official_nets import TdBN as AuthorsTdBN  # the authors' tdBatchNorm (tests/convert)
from snnres.layers import ThresholdScaledBatchNorm2d, eval_scale_shift, seq_tdbn

VTH = 0.6


def _batches(seed, n=4, shape=(6, 3, 5, 5)):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) * 2 + 1 for _ in range(n)], torch.randn(shape, generator=gen)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_authors_convention_is_their_layer_bit_for_bit(optimizer):
    # Forward, gradients, running statistics and the optimiser's trajectory, under SGD and Adam.
    ours, theirs = ThresholdScaledBatchNorm2d(3, VTH), AuthorsTdBN(3)
    assert torch.equal(ours.weight, theirs.bn.weight)  # lambda starts at 1
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
            "adam": lambda p: torch.optim.Adam(p, lr=0.01)}[optimizer]
    opts = make(ours.parameters()), make(theirs.parameters())
    batches, target = _batches(1)
    for x in batches:
        outs = []
        for model, opt in zip((ours, theirs), opts):
            opt.zero_grad()
            y = model(x)
            ((y - target) ** 2).mean().backward()
            opt.step()
            outs.append(y.detach())
        assert torch.equal(*outs)
    assert torch.equal(ours.weight, theirs.bn.weight) and torch.equal(ours.bias, theirs.bn.bias)
    assert torch.equal(ours.running_mean, theirs.bn.running_mean)
    assert torch.equal(ours.running_var, theirs.bn.running_var)
    assert not torch.equal(ours.weight, torch.ones(3))  # it did move
    ours.eval(), theirs.eval()
    assert torch.equal(ours(target), theirs(target))


def test_spikingjelly_convention_is_spikingjellys_layer():
    sj_layer = pytest.importorskip("spikingjelly.activation_based.layer")
    ours = ThresholdScaledBatchNorm2d(3, VTH, eps_placement="inside", scale_param="gamma")
    theirs = sj_layer.ThresholdDependentBatchNorm2d(alpha=1.0, v_th=VTH, num_features=3)
    assert torch.equal(ours.weight, theirs.weight)  # gamma starts at alpha * V_th
    opts = [torch.optim.Adam(m.parameters(), lr=0.01) for m in (ours, theirs)]
    batches, target = _batches(2)
    for x in batches:
        outs = []
        for model, opt, inp in zip((ours, theirs), opts, (x, x.unsqueeze(0))):  # SpikingJelly's is multi-step
            opt.zero_grad()
            y = model(inp).reshape(x.shape)
            ((y - target) ** 2).mean().backward()
            opt.step()
            outs.append(y.detach())
        assert torch.equal(*outs)
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.running_var, theirs.running_var)


def test_adam_moves_gamma_one_over_s_times_as_far():
    # The reason lambda is the default: Adam's first step is ~lr per parameter, so the effective
    # scale moves lr with gamma, s * lr with lambda (s = alpha * V_th = 0.6).
    steps = {}
    for param in ("lambda", "gamma"):
        bn = ThresholdScaledBatchNorm2d(3, VTH, scale_param=param)
        opt = torch.optim.Adam([bn.weight], lr=1e-3)
        before = bn.effective_weight().detach().clone()
        batches, target = _batches(3, n=1)
        ((bn(batches[0]) - target) ** 2).mean().backward()
        opt.step()
        steps[param] = (bn.effective_weight().detach() - before).abs()
    torch.testing.assert_close(steps["gamma"] / steps["lambda"], torch.full((3,), 1 / VTH), rtol=1e-3, atol=0)


def _eval_bn(placement, var, eps=1e-5):
    bn = ThresholdScaledBatchNorm2d(1, VTH, eps=eps, eps_placement=placement).eval()
    bn.running_var.fill_(var)
    return bn


def test_a_channel_with_tiny_variance_by_hand():
    # running mean 0, var 1e-6, eps 1e-5, x = 1e-3 (one standard deviation):
    #   outside: 0.6 * 1e-3 / (1e-3 + 1e-5)   = 0.594059...
    #   inside:  0.6 * 1e-3 / sqrt(1.1e-5)    = 0.180907...   (3.28x smaller)
    x = torch.full((1, 1, 1, 1), 1e-3)
    outside = _eval_bn("outside", 1e-6)(x).item()
    inside = _eval_bn("inside", 1e-6)(x).item()
    assert outside == pytest.approx(0.6 / 1.01, rel=1e-6)
    assert inside == pytest.approx(0.6e-3 / math.sqrt(1.1e-5), rel=1e-6)
    assert outside / inside == pytest.approx(3.2836, rel=1e-4)


def test_at_unit_variance_the_placements_differ_by_about_42_ulps():
    # sqrt(1 + eps) vs 1 + eps: relative difference eps / 2 = 5e-6, 42 float32 ulps (2^-23 each).
    x = torch.full((1, 1, 1, 1), 1.0)
    outside, inside = _eval_bn("outside", 1.0)(x).item(), _eval_bn("inside", 1.0)(x).item()
    assert (inside - outside) / outside == pytest.approx(5e-6, rel=0.02)
    assert 40 <= (inside - outside) / outside * 2 ** 23 <= 44  # float32 rounding of the two outputs


@pytest.mark.parametrize("placement", ["outside", "inside"])
@pytest.mark.parametrize("param", ["lambda", "gamma"])
@pytest.mark.parametrize("affine", [True, False])
def test_eval_scale_shift_is_the_layer_in_eval_mode(placement, param, affine):
    torch.manual_seed(4)
    bn = ThresholdScaledBatchNorm2d(5, VTH, affine=affine, eps_placement=placement, scale_param=param, eps=1e-3)
    bn(torch.randn(16, 5, 4, 4) * torch.logspace(-2, 1, 5).view(1, 5, 1, 1))  # some channels barely vary
    if affine:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
    bn.eval()
    scale, shift = eval_scale_shift(bn)
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    expected = bn.double()(x)
    torch.testing.assert_close(x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), expected, rtol=1e-12, atol=1e-12)


def test_eval_scale_shift_of_a_plain_batchnorm():
    bn = nn.BatchNorm2d(3, eps=1e-3)
    bn(torch.randn(8, 3, 4, 4) * 3)
    bn.eval()
    scale, shift = eval_scale_shift(bn)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), bn.double()(x))


def test_non_affine_normalises_straight_to_the_threshold():
    # DVS-Gesture: tdBatchNorm(BatchNorm2d(2, affine=False)) on the event frames
    bn = seq_tdbn(2, VTH, affine=False)
    y = bn(torch.randn(3, 4, 2, 6, 6) * 5)
    assert list(bn.parameters()) == []
    torch.testing.assert_close(y.transpose(0, 2).reshape(2, -1).std(1, unbiased=False), torch.full((2,), VTH),
                               atol=1e-3, rtol=0)
    theirs = AuthorsTdBN(2, affine=False)
    x = torch.randn(12, 2, 6, 6)
    assert torch.equal(seq_tdbn(2, VTH, affine=False).module(x), theirs(x))


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="alpha \\* v_threshold > 0"):
        ThresholdScaledBatchNorm2d(2, v_threshold=0.0)
    with pytest.raises(ValueError, match="eps_placement='root'.*outside.*inside"):
        ThresholdScaledBatchNorm2d(2, VTH, eps_placement="root")
    with pytest.raises(ValueError, match="scale_param='beta'"):
        ThresholdScaledBatchNorm2d(2, VTH, scale_param="beta")


def test_sync_batchnorm_refuses_tdbn_and_converts_plain_bn():
    from snnres.layers import sync_batchnorm
    from snnres.models import create_model

    with pytest.raises(ValueError, match="--sync-bn: the model has .* tdBN layers"):
        sync_batchnorm(create_model("ds-resnet8", widths=(4, 8, 8)))
    converted = sync_batchnorm(create_model("ms-resnet-cifar8"))
    assert any(isinstance(m, nn.SyncBatchNorm) for m in converted.modules())


def test_half_inputs_are_normalised_in_float32():
    bn = ThresholdScaledBatchNorm2d(3, VTH).eval()
    bn.running_var.fill_(1e-4)
    x = torch.randn(4, 3, 5, 5) * 1e-2
    y = bn(x.half())
    assert y.dtype == torch.float16
    torch.testing.assert_close(y.float(), bn(x.half().float()), rtol=1e-3, atol=1e-3)
