"""The neurons and initialisations each architecture uses, against the authors' equations.

Oracles: the update loops below restate, step by step, the authors' neurons:
- MS-ResNet (Ariande1/MS-ResNet, models/MS_ResNet.py, ``mem_update``): ``u = 0.25 u (1 - s.detach()) + x``,
  ``s = u > 0.5``, surrogate ``|u - 0.5| < 0.5`` (height 1);
- MLF (langfengQ/MLF-DSResNet, parallel_nets/spike_layer_for_cifar10.py, ``MLF_unit``): three membranes
  on one input, ``u_k = 0.25 u_k (1 - s_k) + x`` with the reset *not* detached, ``s_k = u_k > th_k``,
  th = 0.6 / 1.6 / 2.6, surrogate ``|u_k - th_k| < 0.5`` (height 1), output ``s_1 + s_2 + s_3``;
- SEW-ResNet's IF (SpikingJelly ``MultiStepIFNode(detach_reset=True)``): ``v = v + x``, threshold 1, hard
  reset to 0, detached.
"""

import math

import pytest
import torch

from snnres.models import create_model
from snnres.models.common import if_neuron, mlf_neuron, ms_neuron
from snnres.neurons import LIF, MLF


class Box(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, th):
        ctx.save_for_backward(u)
        ctx.th = th
        return (u > th).float()

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * ((u - ctx.th).abs() < 0.5).float(), None


def ms_reference(x):
    u, s, out = torch.zeros_like(x[0]), torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        u = 0.25 * u * (1 - s.detach()) + x[t]
        s = Box.apply(u, 0.5)
        out.append(s)
    return torch.stack(out)


def mlf_reference(x):
    ths = (0.6, 1.6, 2.6)
    us = [torch.zeros_like(x[0]) for _ in ths]
    out = []
    for t in range(x.shape[0]):
        total = 0
        for k, th in enumerate(ths):
            us[k] = 0.25 * us[k] * (1 - Box.apply(us[k], th)) + x[t]
            total = total + Box.apply(us[k], th)
        out.append(total)
    return torch.stack(out)


def _inputs(seed, scale, ties):
    g = torch.Generator().manual_seed(seed)
    if ties:  # a grid of 1/320: 0.5 and 0.6, 1.6, 2.6 are on it, so many steps meet a threshold exactly
        return torch.randint(-320, 320 * scale, (6, 40, 50), generator=g).float() / 320
    # a dyadic grid offset by half a step: no membrane lands exactly on a threshold (where > and >= differ)
    return torch.randint(-64, 64 * scale, (6, 40, 50), generator=g).float() / 64 + 1 / 128


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("preset,reference,scale", [(ms_neuron, ms_reference, 1), (mlf_neuron, mlf_reference, 3)])
def test_preset_neuron_equals_the_authors_update(preset, reference, scale, ties):
    x = _inputs(0, scale, ties)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = preset(backend="torch")(x_ours), reference(x_ref)
    assert torch.equal(ours, ref) and ours.sum() > 0
    weights = torch.randn_like(ref)
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad)
    spikingjelly = preset(backend="torch", fire="ge")(x)  # the other convention: differs on ties only
    assert torch.equal(spikingjelly, ref) != ties


def test_if_neuron_integrates_without_leak():
    x = torch.full((5, 1), 0.3)
    spikes = if_neuron(backend="torch")(x)
    assert spikes.flatten().tolist() == [0, 0, 0, 1, 0]  # 0.3 * 4 = 1.2 >= 1 at the fourth step, reset to 0
    neuron = if_neuron()
    assert isinstance(neuron, LIF) and math.isinf(neuron.tau) and neuron.params.detach_reset


def test_architectures_use_their_papers_neurons():
    ms = create_model("ms-resnet-cifar8")
    ds = create_model("ds-resnet8", widths=(4, 8, 8))
    sew = create_model("sew-resnet8")
    block = ms.blocks()[0]
    assert isinstance(block.neuron1, LIF) and block.neuron1.v_threshold == 0.5 and block.neuron1.params.detach_reset
    assert block.neuron1.tau == pytest.approx(4 / 3) and not block.neuron1.params.decay_input
    assert isinstance(ds.blocks()[0].neuron2, MLF) and ds.blocks()[0].neuron2.params.thresholds == (0.6, 1.6, 2.6)
    assert not ds.blocks()[0].neuron2.params.detach_reset
    assert isinstance(ms.head.neuron, LIF)  # MS head: SN -> pool -> mean over T -> FC
    assert isinstance(ds.head.neuron, torch.nn.Identity)  # DS head: pool -> FC on spike counts
    assert all(math.isinf(m.tau) for m in sew.modules() if isinstance(m, LIF))


def test_neuron_is_passed_in_as_a_layer_type():
    from functools import partial

    model = create_model("ms-resnet-cifar8", neuron=partial(LIF, tau=2.0, v_threshold=0.7, backend="torch"))
    thresholds = {m.v_threshold for m in model.modules() if isinstance(m, LIF)}
    assert thresholds == {0.7}


def test_initialisations_follow_the_authors_code():
    ms = create_model("ms-resnet-cifar8")
    block = ms.blocks()[0]
    assert torch.all(block.bn1.module.weight == 0.5) and torch.all(block.last_bn.module.weight == 0)
    ms_plain_init = create_model("ms-resnet-cifar8", zero_init_residual=False)
    assert torch.all(ms_plain_init.blocks()[0].last_bn.module.weight == 0.5)
    # DS-ResNet: kaiming_normal_ (fan_in) on every conv and the FC; tdBN's lambda = 1 (scale 0.6 * lambda)
    ds = create_model("ds-resnet20")
    conv = ds.stages[2][1].conv2.module
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.05)
    assert ds.head.fc.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.1)
    assert torch.all(ds.blocks()[0].bn1.module.weight == 1)
    torch.testing.assert_close(ds.blocks()[0].bn1.module.effective_weight().detach(), torch.full((64,), 0.6))
    sj = create_model("ds-resnet8", widths=(4, 8, 8), convention="spikingjelly")
    torch.testing.assert_close(sj.blocks()[0].bn1.module.weight.detach(), torch.full((4,), 0.6))  # gamma
    # SEW-ResNet (torchvision's init): kaiming_normal_ fan_out, BN weight 1
    sew = create_model("sew-resnet18", num_classes=1000)
    conv = sew.stages[3][1].branch[0].module
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.05)
    assert torch.all(sew.blocks()[0].last_bn.module.weight == 1)


@pytest.mark.parametrize("arch", ["ms-resnet-cifar8", "ms-resnet18", "ds-resnet8"])
def test_conventions(arch):
    from snnres.layers import ThresholdScaledBatchNorm2d

    for convention, fire, eps in (("official", "gt", "outside"), ("spikingjelly", "ge", "inside")):
        model = create_model(arch, convention=convention)
        neurons = [m for m in model.modules() if isinstance(m, (LIF, MLF))]
        assert neurons and {m.params.fire for m in neurons} == {fire}
        tdbns = [m for m in model.modules() if isinstance(m, ThresholdScaledBatchNorm2d)]
        assert {m.eps_placement for m in tdbns} == (set() if arch.startswith("ms") else {eps})
    assert {m.params.fire for m in create_model(arch).modules() if isinstance(m, (LIF, MLF))} == {"gt"}
    with pytest.raises(ValueError, match="convention='sj'.*official.*spikingjelly"):
        create_model(arch, convention="sj")
