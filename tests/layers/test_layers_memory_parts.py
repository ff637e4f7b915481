"""The pieces of the memory plans against plain PyTorch: compact spike storage, the conv backward,
BatchNorm's training step in parts, and a conv -> BN -> neuron unit on every plan."""

import copy

import pytest
import torch
from torch import nn

from snnres.layers import conv_norm_neuron, seq_bn, seq_conv, seq_tdbn, set_memory
from snnres.layers.batch_norm_parts import (batch_norm_backward, batch_norm_forward, batch_norm_output,
                                            eval_kernel_reproduces_training)
from snnres.layers import ThresholdScaledBatchNorm2d
from snnres.layers.conv_grad import conv2d_backward, repeated_conv
from snnres.layers.memory_plan import check_memory
from snnres.layers.spike_storage import restore, storage_kind, store
from snnres.layers.tdbn_parts import tdbn_backward, tdbn_forward, tdbn_output
from snnres.neurons import LIF, MLF


@pytest.mark.parametrize("numel", [64, 61, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_bits_round_trip(numel, dtype):
    x = (torch.rand(numel) < 0.3).to(dtype)
    stored = store(x, 1)
    assert stored.dtype == torch.uint8 and stored.numel() == -(-numel // 8)  # 1 bit per spike
    back = restore(stored, 1, x.shape, dtype)
    assert back.dtype == dtype and torch.equal(back, x)


@pytest.mark.parametrize("numel", [4096, 1001, 7])
def test_numba_bits_equal_the_torch_reference(numel):
    from snnres.layers import bits_numba
    from snnres.layers.spike_storage import pack_bits, unpack_bits

    x = (torch.rand(numel) < 0.4).float()
    packed = pack_bits(x)
    assert torch.equal(bits_numba.unpack_bits(packed, numel, torch.float64), unpack_bits(packed, numel, torch.float64))
    assert torch.equal(bits_numba.unpack_bits(packed, numel, torch.float32), x)


def test_counts_as_bytes_and_other_values_as_they_are():
    counts = torch.randint(0, 256, (3, 5, 7)).float()
    stored = store(counts, 255)
    assert stored.dtype == torch.uint8 and torch.equal(restore(stored, 255, counts.shape, torch.float32), counts)
    real = torch.randn(4, 3)
    assert storage_kind(None) == storage_kind(256) == "raw" and store(real, None) is not real
    assert torch.equal(restore(store(real, 256), 256, real.shape, real.dtype), real)


CONVS = [dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=3, stride=2, padding=1),
         dict(kernel_size=1, stride=2, padding=0), dict(kernel_size=1, stride=(2, 1), padding=0, bias=True),
         dict(kernel_size=7, stride=2, padding=3, bias=True)]


@pytest.mark.parametrize("opts", CONVS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()))
def test_conv2d_backward_equals_autograd(opts):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, **opts)
    x_seq = torch.randn(3, 2, 6, 9, 11)
    g = torch.randn(conv(x_seq.flatten(0, 1)).shape)
    x = x_seq.clone().requires_grad_()
    params = [x, conv.weight] + ([conv.bias] if conv.bias is not None else [])
    expected = torch.autograd.grad(conv(x.flatten(0, 1)), params, g)
    got = conv2d_backward(g, x_seq, conv.weight.detach(), conv, (True, True, conv.bias is not None))
    for e, a in zip(expected, got):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)


def test_conv_of_an_input_repeated_over_time():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 7, 2, 3, bias=True)
    image = torch.randn(2, 3, 12, 12)
    x_seq = image.unsqueeze(0).expand(4, *image.shape)
    plain = conv(x_seq.reshape(-1, 3, 12, 12))
    torch.testing.assert_close(repeated_conv(conv, x_seq), plain, rtol=1e-6, atol=1e-6)
    g = torch.randn(plain.shape)
    expected = torch.autograd.grad(plain, (conv.weight, conv.bias), g)
    _, gw, gb = conv2d_backward(g, x_seq, conv.weight.detach(), conv, (False, True, True))
    torch.testing.assert_close(gw, expected[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gb, expected[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "train-momentum-none", "eval", "no-running-stats", "no-affine"])
def test_batch_norm_parts_equal_the_module(mode):
    torch.manual_seed(2)
    bn = nn.BatchNorm2d(5, momentum=None if mode == "train-momentum-none" else 0.1,
                        track_running_stats=mode != "no-running-stats", affine=mode != "no-affine")
    if bn.affine:
        nn.init.uniform_(bn.weight, -1.5, 1.5), nn.init.uniform_(bn.bias, -1, 1)
    bn.train(mode != "eval")
    if mode == "eval":
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    ref = nn.BatchNorm2d(5, momentum=bn.momentum, track_running_stats=bn.track_running_stats, affine=bn.affine)
    ref.load_state_dict(bn.state_dict()), ref.train(bn.training)
    x = torch.randn(6, 5, 4, 3) * 2 + 0.5
    g = torch.randn_like(x)
    leaf = x.clone().requires_grad_()
    y_ref = ref(leaf)
    expected = torch.autograd.grad(y_ref, [leaf, *ref.parameters()], g)
    with torch.no_grad():
        y, stats = batch_norm_forward(bn, x)
        again = batch_norm_output(bn, x, stats)
    assert torch.equal(y, y_ref) and torch.equal(again, y)  # bit for bit, without a statistics pass
    for name, buffer in ref.named_buffers():
        assert torch.equal(getattr(bn, name), buffer), name
    got = batch_norm_backward(bn, g, x, stats, (True, True, True))
    for e, a in zip(expected, [t for t in got if t is not None]):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)
    assert eval_kernel_reproduces_training(torch.float32)


@pytest.mark.parametrize("mode", ["train-lambda", "train-gamma", "train-momentum-none", "eval", "no-affine"])
def test_outside_tdbn_parts_equal_the_layer(mode):
    torch.manual_seed(4)
    kw = dict(scale_param="gamma" if mode == "train-gamma" else "lambda", affine=mode != "no-affine",
              momentum=None if mode == "train-momentum-none" else 0.1)
    bn, ref = (ThresholdScaledBatchNorm2d(5, 0.6, **kw) for _ in range(2))
    if bn.affine:
        nn.init.uniform_(bn.weight, 0.5, 1.5), nn.init.uniform_(bn.bias, -0.5, 0.5)
    if mode == "eval":
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    ref.load_state_dict(bn.state_dict())
    bn.train(mode != "eval"), ref.train(mode != "eval")
    x = torch.randn(6, 5, 4, 3) * 2 + 0.5
    g = torch.randn_like(x)
    leaf = x.clone().requires_grad_()
    y_ref = ref(leaf)
    expected = torch.autograd.grad(y_ref, [leaf, *ref.parameters()], g)
    with torch.no_grad():
        y, stats = tdbn_forward(bn, x)
        again = tdbn_output(bn, x, stats)
    assert torch.equal(y, y_ref) and torch.equal(again, y)
    for name, buffer in ref.named_buffers():
        assert torch.equal(getattr(bn, name), buffer), name
    got = [t for t in tdbn_backward(bn, g, x, stats, (True, True, True)) if t is not None]
    assert len(got) == len(expected)
    for e, a in zip(expected, got):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)


NEURONS = {"lif": lambda: LIF(tau=4 / 3, decay_input=False, v_threshold=0.5, detach_reset=True,
                              surrogate="rectangle", alpha=1.0),
           "mlf": lambda: MLF(), "none": lambda: None}


@pytest.mark.parametrize("memory", ["default", "lean"])
@pytest.mark.parametrize("neuron", sorted(NEURONS))
@pytest.mark.parametrize("input_kind", ["spikes", "counts", "real", "repeated"])
@pytest.mark.parametrize("norm", ["bn", "tdbn-outside", "tdbn-inside"])
def test_unit_equals_the_reference_plan(memory, neuron, input_kind, norm):
    torch.manual_seed(3)
    conv, sn = seq_conv(4, 6, 3, 2), NEURONS[neuron]()
    bn = seq_bn(6) if norm == "bn" else seq_tdbn(6, 0.6, eps_placement=norm.removeprefix("tdbn-"))
    nn.init.uniform_(bn.module.weight, 0.5, 2.0)
    shape, max_count = (3, 2, 4, 7, 7), {"spikes": 1, "counts": 5, "real": None, "repeated": None}[input_kind]
    if input_kind == "repeated":
        x = torch.randn(shape[1:]).unsqueeze(0).expand(shape)
    elif max_count is None:
        x = torch.randn(shape)
    else:
        x = torch.randint(0, max_count + 1, shape).float()
    runs = []
    for plan in ("reference", memory):
        c, b, n = (m if m is None else copy.deepcopy(m) for m in (conv, bn, sn))
        leaf = x.detach().requires_grad_(input_kind != "repeated")
        out = conv_norm_neuron(leaf, c, b, n, memory=plan, max_count=max_count)
        g = torch.linspace(-1, 1, out.numel()).view(out.shape)
        params = [p for m in (c, b, n) if m is not None for p in m.parameters()]
        grads = torch.autograd.grad((out * g).sum(), ([leaf] if leaf.requires_grad else []) + params)
        runs.append((out.detach(), grads, dict(b.named_buffers())))
    (out_ref, grads_ref, buffers_ref), (out, grads, buffers) = runs
    assert torch.equal(out, out_ref)
    for name in buffers_ref:
        assert torch.equal(buffers[name], buffers_ref[name]), name
    for a, e in zip(grads, grads_ref):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5 * float(e.abs().max()) + 1e-7)


def test_memory_modes_are_checked():
    with pytest.raises(ValueError, match="unknown memory mode 'lena'.*Did you mean 'lean'"):
        check_memory("lena")
    with pytest.raises(ValueError, match="applies to snnres's spiking models"):
        set_memory(nn.Sequential(nn.Linear(2, 2)), "lean")
