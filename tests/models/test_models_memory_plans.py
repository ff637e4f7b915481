"""Every memory plan trains the same network: against ``memory="reference"`` (plain autograd),
``"default"`` and ``"lean"`` give the same loss and spikes bit for bit, the same BatchNorm
buffers, and gradients to float rounding, for MS-ResNet, DS-ResNet (MLF) and SEW-ResNet, on the
torch and numba neuron backends and on the CUDA kernel built for the host."""

import copy

import pytest
import torch
import torch.nn.functional as F
from host_launch import CXX
from lif_host import build_dir, host_kernels  # noqa: F401  (pytest fixtures)
from torch import nn

from snnres.layers import set_memory
from snnres.models import create_model
from snnres.models.ms_resnet import ms_resnet
from snnres.neurons import backends
from snnres.neurons import SpikingNeuron

NETS = {
    "ms-cifar": lambda b: create_model("ms-resnet-cifar8", T=3, widths=(4, 8, 8), backend=b),
    "ms-imagenet": lambda b: create_model("ms-resnet18", T=2, widths=(4, 8, 8, 8), backend=b),
    "ms-104-layout": lambda b: ms_resnet(num_classes=10, T=2, blocks=(1, 2), widths=(4, 8), strides=(2, 2),
                                         stem="conv3x3-3", shortcut="avgpool-conv", dropout=0.0, backend=b),
    "ds": lambda b: create_model("ds-resnet8", T=3, widths=(4, 8, 8), backend=b),
    "ds-dvs-frames": lambda b: create_model("ds-resnet8", T=3, in_channels=2, widths=(4, 8, 8), input_norm=True,
                                            backend=b),
    "sew-add": lambda b: create_model("sew-resnet8", T=3, widths=(4, 8, 8), backend=b),
    "sew-iand-plif": lambda b: create_model("sew-resnet8", T=3, widths=(4, 8, 8), connect="IAND", neuron="plif",
                                            backend=b),
    "sew-and-mlf": lambda b: create_model("sew-resnet8", T=3, widths=(4, 8, 8), connect="AND", neuron="mlf",
                                          backend=b),
    "plain": lambda b: create_model("spiking-resnet8", T=2, widths=(4, 8, 8), backend=b),
}


def _inputs(name: str):
    gen = torch.Generator().manual_seed(7)
    if name == "ds-dvs-frames":  # event frames [B, T, C, H, W]: not repeated over time
        return torch.randint(0, 3, (2, 3, 2, 8, 8), generator=gen).float(), torch.tensor([1, 4])
    size = 16 if name == "ms-imagenet" else 8
    return torch.randn(2, 3, size, size, generator=gen) * 2, torch.tensor([1, 4])


def _randomise_norms(model: nn.Module) -> None:
    """Non-trivial BN weights (zero-initialised last BNs would hide a branch's gradient paths)."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and m.affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.9 + 0.3)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.4 - 0.1)


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    spikes = []
    hooks = [m.register_forward_hook(lambda mod, i, o: spikes.append(o.detach().clone()))
             for m in model.modules() if isinstance(m, SpikingNeuron)]
    loss = F.cross_entropy(model(x), y)
    for h in hooks:
        h.remove()
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    grads = dict(zip(names, torch.autograd.grad(loss, params)))
    return loss.detach(), spikes, grads, {n: b.clone() for n, b in model.named_buffers()}


def _check_plans_agree(net: str, backend: str) -> None:
    torch.manual_seed(0)
    base = NETS[net](backend)
    _randomise_norms(base)
    x, y = _inputs(net)
    runs = {}
    for memory in ("reference", "default", "lean"):
        runs[memory] = _train_step(set_memory(copy.deepcopy(base), memory), x, y)
    loss_ref, spikes_ref, grads_ref, buffers_ref = runs["reference"]
    assert sum(int(s.count_nonzero()) for s in spikes_ref) > 0
    for memory in ("default", "lean"):
        loss, spikes, grads, buffers = runs[memory]
        assert torch.equal(loss, loss_ref), memory
        assert len(spikes) == len(spikes_ref) and all(torch.equal(a, b) for a, b in zip(spikes, spikes_ref)), memory
        assert all(torch.equal(buffers[n], buffers_ref[n]) for n in buffers_ref), memory
        for name, g_ref in grads_ref.items():
            scale = float(g_ref.abs().max()) + 1e-12
            torch.testing.assert_close(grads[name], g_ref, rtol=1e-4, atol=2e-5 * scale, msg=f"{memory} {name}")


@pytest.mark.parametrize("net", sorted(NETS))
def test_plans_agree_on_numba(net):
    _check_plans_agree(net, "numba")


@pytest.mark.parametrize("net", ["ms-cifar", "ds", "sew-iand-plif"])  # LIF, MLF, learned tau
def test_plans_agree_on_the_torch_reference_neuron(net):
    _check_plans_agree(net, "torch")


@pytest.mark.skipif(CXX is None, reason="g++ not on PATH: cannot build the kernel for the host")
@pytest.mark.parametrize("net", ["ms-cifar", "ds"])
def test_plans_agree_on_the_cuda_kernel_in_host_emulation(host_kernels, monkeypatch, net):
    # The neurons run kernels/lif.cu built for the host behind the cupy backend's own Python side.
    real = backends.resolve_backend
    monkeypatch.setattr(backends, "resolve_backend", lambda name, device: "cupy" if name == "cupy" else real(name, device))
    _check_plans_agree(net, "cupy")


def test_create_model_takes_the_plan():
    model = create_model("ms-resnet-cifar8", memory="lean")
    assert {m.memory for m in model.modules() if hasattr(m, "memory")} == {"lean"}
    with pytest.raises(ValueError, match="unknown memory mode"):
        create_model("ms-resnet-cifar8", memory="small")
    with pytest.raises(ValueError, match="spiking models"):
        create_model("resnet18", memory="lean")
    assert create_model("resnet18", memory="default") is not None


def test_plans_agree_under_autocast():
    # bf16 convs on the CPU: the recomputations re-enter the forward's autocast state.
    torch.manual_seed(0)
    base = create_model("ms-resnet-cifar8", T=3, widths=(8, 16, 16))
    _randomise_norms(base)
    x, y = _inputs("ms-cifar")
    runs = {}
    for memory in ("reference", "default", "lean"):
        model = set_memory(copy.deepcopy(base), memory)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        runs[memory] = loss.detach(), {n: p.grad for n, p in model.named_parameters()}
    for memory in ("default", "lean"):
        assert torch.equal(runs[memory][0], runs["reference"][0])
        for name, g_ref in runs["reference"][1].items():
            torch.testing.assert_close(runs[memory][1][name], g_ref, rtol=1e-3, atol=1e-3 * float(g_ref.abs().max()))
