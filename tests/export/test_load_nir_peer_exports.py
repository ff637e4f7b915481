"""Graphs written by SpikingJelly's and snnTorch's own NIR exporters run in ``from_nir`` spike for
spike as in the library that wrote them (the oracle: that library's network, stepped in time).

SpikingJelly 2.0: IF, LIF (``decay_input`` both ways), CUBA-LIF, convolutions, average pooling,
flatten, linear. snnTorch 1.0: ``Leaky``, the recurrent ``RLeaky`` (a cycle ``lif <-> w_rec``)
and ``Synaptic`` (CubaLIF). snnTorch's exporter needs per-neuron ``beta``/``threshold`` tensors
and ``ignore_dims=[0]`` to write graphs that NIR 1.0.8 type-checks (snnres/export/README.md).
"""

from __future__ import annotations

import contextlib
import io

import nir
import pytest
import torch

from snnres.export import from_nir

DT = 1e-4


def record_steps(net: torch.nn.Module, modules: dict[str, torch.nn.Module], x_seq: torch.Tensor, reset) -> dict:
    """Step ``net`` through ``x_seq`` ([T, B, ...]) and stack every listed module's output."""
    recorded: dict[str, list] = {name: [] for name in modules}
    handles = [m.register_forward_hook(lambda mod, args, out, name=name: recorded[name].append(
        out if isinstance(out, torch.Tensor) else out[0])) for name, m in modules.items()]
    reset(net)
    with torch.no_grad():
        for x in x_seq:
            net(x)
    for h in handles:
        h.remove()
    return {name: torch.stack(v) for name, v in recorded.items()}


@pytest.mark.parametrize("strategy", ["auto", "reference"])
def test_spikingjelly_exports_load_spike_for_spike(tmp_path, strategy):
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange.to_nir import export_to_nir

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        layer.Conv2d(2, 4, 3, padding=1), neuron.IFNode(), layer.AvgPool2d(2),
        layer.Conv2d(4, 6, 3, padding=1), neuron.LIFNode(tau=2.0, v_threshold=0.6),
        layer.Conv2d(6, 6, 3, padding=1), neuron.LIFNode(tau=3.0, decay_input=False, v_threshold=0.5),
        layer.Flatten(), layer.Linear(6 * 3 * 3, 5), neuron.CUBALIFNode(c_decay=0.6, v_decay=0.7, v_threshold=0.4),
    ).double()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_(4.0)  # enough drive that every layer fires and rests
                m.bias.add_(0.2)
    export_to_nir(net, torch.rand(1, 2, 6, 6, dtype=torch.float64), save_path=tmp_path / "sj.nir")
    x = torch.rand(8, 3, 2, 6, 6, dtype=torch.float64) * 2
    neurons = {f"_{i}": m for i, m in enumerate(net) if isinstance(m, neuron.BaseNode)}  # its node names
    expected = record_steps(net, neurons, x, functional.reset_net)
    record: dict = {}
    loaded = from_nir(tmp_path / "sj.nir", dtype=torch.float64, strategy=strategy)
    loaded.run_sequence(x, record=record)
    for name, spikes in expected.items():
        assert 0 < spikes.mean() < 1, f"{name}: no activity to compare"
        assert torch.equal(record[name], spikes), f"{name}: {int((record[name] != spikes).sum())} spikes differ"


def snntorch_net():
    import snntorch as snn

    def full(n, value):  # per-neuron tensors: snnTorch writes a scalar as a 0-d array NIR 1.0.8 rejects
        return torch.full((n,), value)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            kw = dict(init_hidden=True, reset_mechanism="zero", reset_delay=False)
            self.fc1 = torch.nn.Linear(5, 7)
            self.lif1 = snn.Leaky(beta=full(7, 0.8), threshold=full(7, 1.0), **kw)
            self.fc2 = torch.nn.Linear(7, 7)
            self.rlif = snn.RLeaky(beta=0.9, linear_features=7, **kw)
            self.fc3 = torch.nn.Linear(7, 3)
            self.syn = snn.Synaptic(alpha=full(3, 0.7), beta=full(3, 0.85), threshold=full(3, 0.5), **kw)

        def forward(self, x):
            return self.syn(self.fc3(self.rlif(self.fc2(self.lif1(self.fc1(x))))))

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.fc1.weight.mul_(3)
        net.rlif.recurrent.weight.mul_(2)
        net.fc3.weight.mul_(3)
    return net


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph:DeprecationWarning")
def test_snntorch_exports_with_recurrence_load_spike_for_spike(tmp_path):
    import snntorch.utils
    from snntorch.export_nir import export_to_nir

    net = snntorch_net()
    with contextlib.redirect_stdout(io.StringIO()):
        graph = export_to_nir(net, torch.rand(1, 5), ignore_dims=[0])
    nir.write(tmp_path / "snntorch.nir", graph)
    x = torch.rand(12, 3, 5) * 2
    expected = record_steps(net, {"lif1": net.lif1, "rlif.lif": net.rlif, "syn": net.syn}, x, snntorch.utils.reset)
    loaded = from_nir(tmp_path / "snntorch.nir")  # float32, as snnTorch ran
    assert loaded.recurrent and loaded.delayed["rlif.w_rec"] == ["rlif.lif"]
    record: dict = {}
    loaded.run_sequence(x, record=record)
    for name, spikes in expected.items():
        assert 0 < spikes.mean() < 1, f"{name}: no activity to compare"
        assert torch.equal(record[name], spikes), f"{name}: {int((record[name] != spikes).sum())} spikes differ"
