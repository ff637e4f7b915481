"""The GPU simulator (``snnres.sim.cuda`` + ``kernels/event_sim.cu``) without a GPU, against the CPU one.

g++ builds ``kernels/event_sim.cu`` for the host with ``tests/cuda_host/`` standing in for the
CUDA built-ins (a warp's lanes are host threads, so the ballot and shuffles meet real partners,
and the atomics run under a mutex). Everything on the Python side is the real code on CPU
tensors; only CuPy's launch (``cuda._launch``) is replaced, and the grid is capped at two blocks
so that the kernels' grid-stride loops run several rounds.

The kernels multiply by ``1 / tau`` (PyTorch on the GPU); the CPU simulator divides (PyTorch on
the CPU). The networks here use ``tau`` in {2, 4}, where the two agree bit for bit, and dyadic
weights, so the atomics' order of addition does not matter either: spikes, counts and logits
must equal the CPU simulator's exactly.
"""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest
import torch
from host_launch import CXX, HOST, call
from sim_testnets import TimeSequential, dyadic_, random_conv_net, random_events
from test_sim_gather import wide_net
from torch import nn

from snnres import models
from snnres.models import ms_resnet
from snnres.neurons import LIF, MLF
from snnres.sim import EventSimulator, cuda

pytestmark = pytest.mark.skipif(CXX is None, reason="g++ not on PATH: cannot build the kernels for the host")


@pytest.fixture(scope="module")
def host_library(tmp_path_factory) -> ctypes.CDLL:
    folder = tmp_path_factory.mktemp("event_sim_host")
    (folder / "event_sim.cu").write_text(cuda.kernel_source())  # the source the package ships
    target = folder / "event_sim.so"
    cmd = [CXX, "-std=c++20", "-O1", "-ffp-contract=off", "-mf16c", "-fPIC", "-shared", "-pthread", f"-I{HOST}",
           f"-I{folder}", "-include", str(HOST / "cuda_fp16.h"), str(HOST / "launch_event_sim.cpp"), "-o", str(target)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 and ("barrier" in result.stderr or "immintrin" in result.stderr):
        pytest.skip(f"g++ cannot build the host stand-in here (C++20 <barrier>, x86 F16C): {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(target))


@pytest.fixture
def gpu_sim(monkeypatch, host_library):
    """``make(model)``: a simulator whose chunks run through cuda.run_chunk on the host build."""
    def launch(name, device, n_items, args):
        call(host_library, name, *cuda.launch_shape(n_items), args)

    monkeypatch.setattr(cuda, "_launch", launch)
    monkeypatch.setattr(cuda, "MAX_BLOCKS", 2)

    def make(model):
        sim = EventSimulator(model)
        sim.run_chunk = lambda graph, state, chunk: cuda.run_chunk(graph, state, chunk, torch.device("cpu"))
        return sim
    return make


def power_of_two_tau_(model: nn.Module, tau: float = 2.0) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (LIF, MLF)):
            m._tau = tau
    return model


def assert_same(cpu, gpu):
    assert set(gpu.spike_trains) == set(cpu.spike_trains)
    for name, train in cpu.spike_trains.items():
        assert torch.equal(gpu.spike_trains[name], train), f"spikes of {name} differ"
    assert gpu.spikes_per_layer == cpu.spikes_per_layer
    assert gpu.neuron_updates == cpu.neuron_updates
    assert gpu.sops == cpu.sops and gpu.macs == cpu.macs
    assert torch.equal(gpu.logits, cpu.logits)


@pytest.mark.parametrize("variant", range(8))  # stride, padding, avg / max pooling, LIF and MLF, both classifiers
def test_random_networks_equal_the_cpu_simulator(gpu_sim, variant):
    rng = np.random.default_rng(variant)
    sensor = [(17, 15, 2), (16, 16, 1), (20, 13, 2), (11, 19, 2)][variant % 4]
    T = int(rng.integers(3, 7))
    net = power_of_two_tau_(random_conv_net(rng, sensor, variant), [2.0, 4.0][variant % 2])
    events = random_events(rng, sensor, int(rng.integers(200, 1500)))
    cpu = EventSimulator(net).run(events, sensor, T, record=True)
    gpu = gpu_sim(net).run(events, sensor, T, record=True)
    assert sum(cpu.spikes_per_layer.values()) > 0 and sum(cpu.sops.values()) > 0
    assert_same(cpu, gpu)


def test_dilation_wide_layers_and_a_bias(gpu_sim):
    """y-dilation with stride 2, a 3x5 kernel without x padding, 96 output channels (three
    rounds of the warp's 32 lanes), conv biases, MLF; busy input."""
    rng = np.random.default_rng(7)
    sensor = (18, 14, 2)
    net = power_of_two_tau_(wide_net(rng))
    events = random_events(rng, sensor, 18 * 14 * 2 * 3)
    cpu = EventSimulator(net).run(events, sensor, 5, record=True)
    assert_same(cpu, gpu_sim(net).run(events, sensor, 5, record=True))


def test_mlp_on_real_valued_frames(gpu_sim):
    """Linear layers as the 1x1 case; real-valued input frames are counted as MACs, spikes as SOPs."""
    rng = np.random.default_rng(5)
    net = dyadic_(TimeSequential(nn.Flatten(), nn.Linear(2 * 6 * 5, 40), nn.BatchNorm1d(40), LIF(v_threshold=0.5),
                                 nn.Linear(40, 3)), rng)
    frames = torch.from_numpy(rng.integers(-4, 5, (4, 2, 6, 5)) / 4 * (rng.random((4, 2, 6, 5)) < 0.4)).float()
    cpu = EventSimulator(net).run(frames, record=True)
    gpu = gpu_sim(net).run(frames, record=True)
    assert cpu.macs["1"] > 0 and cpu.sops["4"] > 0
    assert_same(cpu, gpu)


def test_streamed_chunks_carry_the_membranes(gpu_sim):
    rng = np.random.default_rng(11)
    sensor = (16, 16, 2)
    net = power_of_two_tau_(random_conv_net(rng, sensor, 1))
    events = random_events(rng, sensor, 1200, duration=8000)
    results = []
    for sim in (EventSimulator(net), gpu_sim(net)):  # chunks of 1-3 bins on the GPU side
        stream = sim.stream(record=True)
        for piece in np.array_split(events, 5):
            stream.push(piece, sensor, bin_us=1000)
        stream.close(8)
        results.append(stream.result())
    assert results[0].steps == 8
    assert_same(*results)


RESIDUAL = {
    "ms-resnet (membrane shortcut, projection conv: MACs)": lambda: ms_resnet.ms_resnet(
        num_classes=4, T=4, in_channels=2, blocks=(1, 2), widths=(8, 16), strides=(1, 2), stem="conv3",
        shortcut="avgpool-conv"),
    "ds-resnet8 (MLF)": lambda: models.create_model("ds-resnet8", num_classes=4, T=4, in_channels=2,
                                                   widths=(8, 12, 16), first_stride=2),
    "sew-resnet8 ADD": lambda: models.create_model("sew-resnet8", num_classes=4, T=4, in_channels=2,
                                                  connect="ADD", neuron="if"),
    "sew-resnet8 IAND": lambda: models.create_model("sew-resnet8", num_classes=4, T=4, in_channels=2,
                                                   connect="IAND", neuron="mlf"),
}


@pytest.mark.parametrize("name", list(RESIDUAL))
def test_residual_models_equal_the_cpu_simulator(gpu_sim, name):
    """Membrane shortcuts (real-valued currents, MACs), SEW's spike additions and gates, MLF levels."""
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    net = power_of_two_tau_(dyadic_(RESIDUAL[name](), rng), 4.0)
    sensor = (16, 16, 2)
    events = random_events(rng, sensor, 1500)
    cpu = EventSimulator(net).run(events, sensor, 4, record=True)
    gpu = gpu_sim(net).run(events, sensor, 4, record=True)
    assert sum(cpu.spikes_per_layer.values()) > 0
    assert_same(cpu, gpu)


def test_scatter_counts_a_hand_worked_event(gpu_sim):
    """One event of count 2 in the corner of a 3x3 conv with padding 1: four outputs, 2 x 4 x 3 SOPs."""
    conv = nn.Conv2d(1, 3, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_((torch.arange(27, dtype=torch.float32).reshape(3, 1, 3, 3) + 1) / 8)  # none is 0
    net = TimeSequential(conv, LIF(tau=2.0, v_threshold=100.0)).eval()
    frames = torch.zeros(1, 1, 4, 4)
    frames[0, 0, 0, 0] = 2.0
    out = gpu_sim(net).run(frames)
    assert out.sops == {"0": 2 * 4 * 3}
    assert out.neuron_updates == {"1": 4 * 3}  # only the reached neurons leave rest
    assert torch.equal(out.logits, EventSimulator(net).run(frames).logits)


def test_cuda_device_without_a_gpu_says_why():
    net = TimeSequential(nn.Conv2d(2, 4, 3), LIF())
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="GPU simulator cannot run"):
        EventSimulator(net, device="cuda")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        cuda.check_device(torch.device("cpu"))


@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("fire", ["ge", "gt"])
def test_ties_decided_like_the_cpu_simulator(gpu_sim, fire, v_reset):
    """Dyadic weights and inputs put many membranes exactly on V_th: both simulators decide each
    tie by ``fire`` (the GPU kernel compares with the same least-firing thresholds)."""
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randint(0, 3, conv.weight.shape) / 4.0)
    net = TimeSequential(conv, LIF(tau=2.0, v_threshold=0.5, v_reset=v_reset, fire=fire), nn.Flatten(),
                         nn.Linear(4 * 36, 3)).eval()
    with torch.no_grad():  # dyadic: the order of the GPU's atomic additions cannot change the logits
        net[3].weight.copy_(torch.round(net[3].weight * 32) / 32)
        net[3].bias.zero_()
    frames = torch.randint(0, 3, (5, 1, 6, 6), generator=torch.Generator().manual_seed(1)).float()
    cpu = EventSimulator(net).run(frames, record=True)
    assert_same(cpu, gpu_sim(net).run(frames, record=True))
    assert torch.equal(cpu.spike_trains["1"], dense_spikes(net, frames))
    other = LIF(tau=2.0, v_threshold=0.5, v_reset=v_reset, fire="gt" if fire == "ge" else "ge")
    flipped = TimeSequential(conv, other, net[2], net[3]).eval()
    assert not torch.equal(EventSimulator(flipped).run(frames, record=True).spike_trains["1"], cpu.spike_trains["1"])


def dense_spikes(net, frames):
    from sim_testnets import dense_run

    return dense_run(net, frames)[1]["1"]
