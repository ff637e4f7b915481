"""The GPU simulator on a GPU: against the dense model on the GPU and the CPU simulator (skipped without one)."""

import numpy as np
import pytest
import torch
from sim_testnets import dense_run, frames_of, random_conv_net, random_events

from snnres.neurons.backends import unavailable_reason
from snnres.sim import EventSimulator

pytestmark = pytest.mark.gpu
_reason = unavailable_reason("cupy", "cuda")
if _reason is not None:
    pytest.skip(f"cupy unavailable: {_reason}", allow_module_level=True)


@pytest.fixture(autouse=True)
def no_tf32():
    """Dense fp32 sums on the GPU (TF32 would round the dyadic weights' products)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("variant", range(16))
def test_random_networks_match_the_dense_gpu_run(variant):
    """Every tau (both sides multiply by 1/tau on the GPU), dyadic weights: identical spikes."""
    rng = np.random.default_rng(variant)
    sensor = [(17, 15, 2), (16, 16, 1), (20, 13, 2), (11, 19, 2)][variant % 4]
    T = int(rng.integers(3, 9))
    net = random_conv_net(rng, sensor, variant).cuda()
    events = random_events(rng, sensor, int(rng.integers(50, 2000)))
    logits, spikes = dense_run(net, frames_of(events, sensor, T).cuda())
    out = EventSimulator(net, device="cuda").run(events, sensor, T, record=True)
    assert set(out.spike_trains) == set(spikes)
    for name, dense in spikes.items():
        assert torch.equal(out.spike_trains[name], dense.cpu()), f"spikes of {name} differ"
        assert out.spikes_per_layer[name] == int(dense.sum())
    torch.testing.assert_close(out.logits, logits.cpu(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("variant", [0, 1, 4, 5])
def test_counts_equal_the_cpu_simulator(variant):
    rng = np.random.default_rng(100 + variant)
    sensor = (16, 16, 2)
    net = random_conv_net(rng, sensor, variant)
    for m in net.modules():
        if hasattr(m, "_tau"):
            m._tau = 2.0  # division (CPU) and multiplication by 1/tau (GPU) agree
    events = random_events(rng, sensor, 1500)
    cpu = EventSimulator(net).run(events, sensor, 6)
    gpu = EventSimulator(net, device="cuda").run(events, sensor, 6)
    assert gpu.sops == cpu.sops and gpu.macs == cpu.macs
    assert gpu.spikes_per_layer == cpu.spikes_per_layer and gpu.neuron_updates == cpu.neuron_updates
    assert torch.equal(gpu.logits, cpu.logits)
