"""NIR export checked by running the written file elsewhere: NIRTorch (own node maps), Norse.

The oracle for the round trip is a graph built by ``nirtorch.nir_to_torch`` from the file that
``nir.write`` wrote and ``nir.read`` read back, with an Euler-integrated LIF written here from
NIR's definition (``tau dv/dt = (v_leak - v) + r I``, spike on ``v > v_threshold``, reset to
``v_reset``), stepped one time step at a time. Its spikes must equal snnres's, layer by layer.
Everything runs in float64 so that BatchNorm folding (which reorders the arithmetic) cannot move
a membrane across a threshold.
"""

from __future__ import annotations

import warnings

import nir
import nirtorch
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nir_testnets import PlainSNN, TinyMSResNet, randomize_batchnorm, record_spikes
from torch import nn

from snnres.export import ExportError, from_nir, to_nir

DT = 1e-4


class EulerLIF(nn.Module):
    """NIR's LIF, one forward Euler step per call; records its spikes for the comparison."""

    def __init__(self, node: nir.LIF, dt: float, dtype=torch.float64):
        super().__init__()
        for field in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
            self.register_buffer(field, torch.as_tensor(np.asarray(getattr(node, field)), dtype=dtype))
        self.dt = dt
        self.layer = str(node.metadata.get("snnres_layer", ""))
        self.recorded: list[torch.Tensor] = []

    def forward(self, x, state=None):
        v = self.v_leak.expand_as(x) if state is None else state
        v = v + self.dt / self.tau * (self.v_leak - v + self.r * x)
        z = (v > self.v_threshold).to(x.dtype)
        v = torch.where(z > 0, self.v_reset, v)
        self.recorded.append(z)
        return z, v


class EulerIF(nn.Module):
    """NIR's IF ``dv/dt = r I``, one forward Euler step per call, spike on ``v > v_threshold``."""

    def __init__(self, node: nir.IF, dt: float, dtype=torch.float64):
        super().__init__()
        for field in ("r", "v_threshold", "v_reset"):
            self.register_buffer(field, torch.as_tensor(np.asarray(getattr(node, field)), dtype=dtype))
        self.dt = dt
        self.layer = str(node.metadata.get("snnres_layer", ""))
        self.recorded: list[torch.Tensor] = []

    def forward(self, x, state=None):
        v = self.v_reset.expand_as(x) if state is None else state
        v = v + self.dt * self.r * x
        z = (v > self.v_threshold).to(x.dtype)
        v = torch.where(z > 0, self.v_reset, v)
        self.recorded.append(z)
        return z, v


class SumPool(nn.Module):
    def __init__(self, node):
        super().__init__()
        self.k, self.s, self.p = (tuple(int(v) for v in np.atleast_1d(a)) for a in (node.kernel_size, node.stride, node.padding))

    def forward(self, x):
        return F.avg_pool2d(x, self.k, self.s, self.p, divisor_override=1)


def _affine(node):  # nirtorch 2.6's default map sets module.weight.bias, dropping the bias
    m = nn.Linear(node.weight.shape[1], node.weight.shape[0])
    m.weight.data, m.bias.data = torch.from_numpy(node.weight), torch.from_numpy(node.bias)
    return m


def _conv(node):
    w = torch.from_numpy(node.weight)
    m = nn.Conv2d(w.shape[1] * int(node.groups), w.shape[0], tuple(w.shape[2:]), stride=tuple(node.stride),
                  padding=tuple(int(p) for p in node.padding), dilation=tuple(node.dilation), groups=int(node.groups))
    m.weight.data, m.bias.data = w, torch.from_numpy(node.bias)
    return m


class _Scale(nn.Module):
    def __init__(self, node):
        super().__init__()
        self.register_buffer("scale", torch.from_numpy(node.scale))

    def forward(self, x):
        return x * self.scale


def node_map(dt):
    return {
        nir.LIF: lambda n: EulerLIF(n, dt),
        nir.IF: lambda n: EulerIF(n, dt),
        nir.Affine: _affine,
        nir.Conv2d: _conv,
        nir.SumPool2d: SumPool,
        nir.AvgPool2d: lambda n: nn.AvgPool2d(tuple(int(v) for v in n.kernel_size), tuple(int(v) for v in n.stride)),
        # NIR's Flatten dims exclude the batch; nirtorch 2.6's default passes them to torch as is.
        nir.Flatten: lambda n: nn.Flatten(int(n.start_dim) + 1, int(n.end_dim) + 1 if int(n.end_dim) >= 0 else -1),
        nir.Scale: _Scale,
    }


def run_nirtorch(graph: nir.NIRGraph, x_seq: torch.Tensor, dt: float):
    module = nirtorch.nir_to_torch(graph, node_map(dt), dtype=torch.float64)
    state, outputs = None, []
    with torch.no_grad():
        for x_t in x_seq:
            out, state = module(x_t, state)
            outputs.append(out)
    recorded: dict[str, torch.Tensor] = {}
    for m in module.modules():
        if isinstance(m, (EulerLIF, EulerIF)):
            z = torch.stack(m.recorded)
            recorded[m.layer] = recorded[m.layer] + z if m.layer in recorded else z  # MLF: sum the levels
    return torch.stack(outputs), recorded


def check_types(graph: nir.NIRGraph) -> None:
    again = nir.NIRGraph(nodes=graph.nodes, edges=list(graph.edges), metadata=graph.metadata, type_check=True)
    again.validate_structure()
    for node in graph.nodes.values():
        if isinstance(node, (nir.LIF, nir.IF)):
            assert node.r.shape == node.v_threshold.shape == node.v_reset.shape == tuple(node.input_type["input"])


def round_trip(make_model, input_shape, tmp_path, batch=3, gain=3.0, seed=0):
    torch.manual_seed(seed)
    model = randomize_batchnorm(make_model().double(), seed)
    graph = to_nir(model, input_shape, dt=DT)
    check_types(graph)
    path = tmp_path / "model.nir"
    nir.write(path, graph)
    read = nir.read(path)
    check_types(read)
    x = torch.rand(batch, *input_shape, dtype=torch.float64) * gain
    expected, spikes = record_spikes(model, x)
    outputs, nir_spikes = run_nirtorch(read, x.unsqueeze(0).expand(model.T, *x.shape), DT)
    assert set(nir_spikes) == set(spikes)
    for layer, s in spikes.items():
        assert 0 < s.mean() < s.max(), f"{layer}: no activity to compare"
        assert torch.equal(nir_spikes[layer], s), f"{layer}: {int((nir_spikes[layer] != s).sum())} spikes differ"
    torch.testing.assert_close(outputs.mean(0), expected, rtol=1e-9, atol=1e-9)
    return graph, read, x, expected


def test_plain_conv_snn_round_trip_through_file(tmp_path):
    graph, read, *_ = round_trip(lambda: PlainSNN(spiking_output=True), (2, 8, 8), tmp_path)
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    assert kinds.count("LIF") == 3 and "BatchNorm2d" not in kinds and "SumPool2d" in kinds
    assert read.metadata["dt"] == DT and read.metadata["reset"] == "hard"
    assert read.metadata["snnres_version"] == __import__("snnres").__version__
    lif = graph.nodes["lif1"]
    assert np.allclose(lif.tau, DT * 2.0) and np.allclose(lif.r, 1.0) and np.all(lif.v_leak == 0)


def test_ms_resnet_shortcuts_are_summed_edges(tmp_path):
    graph, *_ = round_trip(TinyMSResNet, (2, 8, 8), tmp_path)
    into = lambda name: sorted(s for s, d in graph.edges if d == name)  # noqa: E731
    # block 0 is an identity block: its second neuron-input is the stem plus block 0's residual
    assert into("blocks_1_neuron1") == ["blocks_0_conv2", "stem_0"]
    assert into("blocks_1_downsample_0") == ["blocks_0_conv2", "stem_0"]
    assert into("head_neuron") == ["blocks_1_conv2", "blocks_1_downsample_0", "blocks_2_conv2"]
    lif = graph.nodes["blocks_0_neuron1"]  # decay_input=False: r = tau, beta = 1/4
    assert np.allclose(lif.r, 4 / 3) and np.allclose(lif.tau, DT * 4 / 3) and np.allclose(lif.v_threshold, 0.5)


def test_ds_resnet_mlf_levels_round_trip(tmp_path):
    graph, *_ = round_trip(lambda: TinyMSResNet(mlf=True), (2, 8, 8), tmp_path)
    levels = [n for k, n in graph.nodes.items() if k.startswith("head_neuron_level")]
    assert sorted(float(n.v_threshold.flat[0]) for n in levels) == pytest.approx([0.6, 1.6, 2.6])
    into_fc = sorted(s for s, d in graph.edges if d == "pool")
    assert into_fc == ["head_neuron_level0", "head_neuron_level1", "head_neuron_level2"]


def test_from_nir_loads_back_into_snnres(tmp_path):
    torch.manual_seed(0)
    model = randomize_batchnorm(TinyMSResNet(mlf=True).double())
    path = tmp_path / "m.nir"
    nir.write(path, to_nir(model, (2, 8, 8), dt=DT))
    net = from_nir(str(path))
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64) * 3
    torch.testing.assert_close(net(x), model(x), rtol=1e-9, atol=1e-9)
    frames = x.unsqueeze(1).expand(2, model.T, *x.shape[1:])  # [B, T, C, H, W], the models' event layout
    torch.testing.assert_close(net(frames), model(x), rtol=1e-9, atol=1e-9)


def test_norse_reads_plain_conv_snn(tmp_path):
    """Norse 1.1.0's from_nir on a plain conv SNN with r = 1 (decay_input=True).

    Known Norse 1.1.0 limitations, worked around here and listed in snnres/export/README.md:
    its LIF import ignores ``r`` (so only decay_input=True neurons, r = 1, import correctly), it
    has no AvgPool2d, and it passes NIR's Flatten ``start_dim`` (which excludes the batch) to
    ``torch.nn.Flatten`` so the batch is flattened too: we feed one sample at a time.
    """
    norse_torch = pytest.importorskip("norse.torch")
    torch.manual_seed(1)
    model = randomize_batchnorm(PlainSNN(spiking_output=True, num_classes=6).double(), 1)
    path = tmp_path / "plain.nir"
    nir.write(path, to_nir(model, (2, 8, 8), dt=DT))
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64) * 3
    _, spikes = record_spikes(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Norse calls the deprecated nirtorch.load
        net = norse_torch.from_nir(nir.read(path), dt=DT).double()
    for b in range(x.shape[0]):
        state, out = None, []
        with torch.no_grad():
            for _ in range(model.T):
                z, state = net(x[b : b + 1], state)
                out.append(z.reshape(-1))
        assert torch.equal(torch.stack(out), spikes["lif3"][:, b]), f"sample {b}"
    assert spikes["lif3"].sum() > 0


def test_errors_name_the_layer():
    pooled = PlainSNN(pool=nn.MaxPool2d(2))
    with pytest.raises(ExportError, match="'pool'.*MaxPool2d"):
        to_nir(pooled, (2, 8, 8))
    relu = PlainSNN(neuron=nn.ReLU)
    with pytest.raises(ExportError, match="relu.*'lif1'"):
        to_nir(relu, (2, 8, 8))
    attention = nn.Sequential(nn.Flatten(), nn.MultiheadAttention(8, 2))
    with pytest.raises(ExportError, match="'1'.*MultiheadAttention"):
        to_nir(attention, (8,))


def test_soft_reset_needs_allow_lossy():
    from functools import partial

    from snnres.neurons import LIF

    model = PlainSNN(neuron=partial(LIF, tau=2.0, v_reset=None))
    with pytest.raises(ExportError, match="'lif1'.*soft reset.*allow_lossy"):
        to_nir(model, (2, 8, 8))
    with pytest.warns(UserWarning, match="soft reset"):
        graph = to_nir(model, (2, 8, 8), allow_lossy=True)
    assert graph.metadata["lossy"] and "lif1" in graph.metadata["lossy_details"]
    check_types(graph)


def test_learned_tau_and_frames_input():
    from snnres.neurons import LIF

    class Frames(nn.Module):  # [B, T, C, H, W] like the event data sets
        def __init__(self):
            super().__init__()
            self.T, self.conv, self.lif = 3, nn.Conv2d(2, 3, 3), LIF(tau=2.5, learn_tau=True)

        def forward(self, x):
            x = x.transpose(0, 1)
            T, B = x.shape[:2]
            y = self.conv(x.reshape(T * B, *x.shape[2:])).reshape(T, B, 3, 4, 4)
            return self.lif(y).flatten(2).sum(0)

    graph = to_nir(Frames(), (2, 6, 6), input_layout="frames")
    lif = graph.nodes["lif"]
    assert np.allclose(lif.tau, DT * 2.5, rtol=1e-5) and tuple(lif.tau.shape) == (3, 4, 4)
    assert [type(n).__name__ for n in graph.nodes.values()] == ["Input", "Conv2d", "LIF", "Flatten", "Scale", "Output"]
    check_types(graph)


def test_integrate_and_fire_is_nir_if(tmp_path):
    """tau = inf (IF, H = V + X) is nir.IF with r = 1/dt: Euler's v += dt r I adds the input once."""
    from snnres.models.common import if_neuron

    graph, *_ = round_trip(lambda: PlainSNN(neuron=if_neuron, spiking_output=True), (2, 8, 8), tmp_path)
    node = graph.nodes["lif1"]
    assert type(node).__name__ == "IF" and np.allclose(node.r, 1 / DT) and np.all(node.v_threshold == 1.0)
    assert not any(isinstance(n, nir.LIF) for n in graph.nodes.values())


def test_non_finite_parameters_are_rejected():
    from functools import partial

    from snnres.neurons import LIF

    with pytest.raises(ExportError, match="'lif1'.*v_threshold.*inf"):
        to_nir(PlainSNN(neuron=partial(LIF, v_threshold=float("inf"))), (2, 8, 8))
    with pytest.raises(ExportError, match="'lif1'.*tau = inf.*decay_input"):
        to_nir(PlainSNN(neuron=partial(LIF, tau=float("inf"), decay_input=True)), (2, 8, 8))
    model = PlainSNN()
    model.conv2.weight.data[0, 0, 0, 0] = float("nan")
    with pytest.raises(ExportError, match="'conv2'.*weight has 1 non-finite"):
        to_nir(model, (2, 8, 8))
    model = randomize_batchnorm(PlainSNN())
    model.bn1.running_var[2] = -1.0  # sqrt of a negative variance would be NaN
    with pytest.raises(ExportError, match="'bn1'.*running_var"):
        to_nir(model, (2, 8, 8))
    with pytest.raises(ValueError, match="dt must be finite"):
        to_nir(PlainSNN(), (2, 8, 8), dt=float("inf"))
