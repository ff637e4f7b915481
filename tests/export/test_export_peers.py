"""Every registered spiking architecture, exported at a small size, runs spike for spike in
SpikingJelly's and snnTorch's own NIR importers (where they support the nodes) and in ours.

The graph goes through the file (``nir.write`` -> ``nir.read``). The snnres model runs in float64
with random BatchNorm statistics; SpikingJelly imports in float64, snnTorch in float32 (its
neurons emit float32 spikes) one sample at a time (its Flatten flattens the batch). Every neuron
layer's spikes must be equal at every step; the logits agree to rounding.
"""

from __future__ import annotations

import re

import nir
import pytest
import torch
from nir_peers import snntorch_run, spikingjelly_run
from nir_testnets import randomize_batchnorm, record_spikes

from snnres.export import ExportError, from_nir, to_nir
from snnres.models import create_model, list_models

DT, T, B = 1e-4, 3, 3
BOTH = ("spikingjelly", "snntorch")
# name, model arguments, input size, peers whose importers take the graph (snnTorch 1.0 refuses
# nir.IF unless r = 1: the IF networks run in SpikingJelly only)
CASES = [
    ("ms-resnet18", {"widths": (4, 4, 8, 8)}, 16, BOTH),
    ("ms-resnet34", {"widths": (4, 4, 4, 4)}, 16, BOTH),
    # 51 blocks: the peers' importers (NIRTorch's graph walk) take ~10 s each; one of them is enough
    pytest.param("ms-resnet104", {"widths": (4, 4, 4, 4)}, 32, ("spikingjelly",), marks=pytest.mark.slow),
    ("ms-resnet-cifar8", {"widths": (4, 8, 8)}, 16, BOTH),
    ("ds-resnet8", {"widths": (4, 8, 8), "input_norm": True}, 16, BOTH),
    ("sew-resnet8", {"widths": (4, 8, 8)}, 16, ("spikingjelly",)),
    ("sew-resnet8", {"widths": (4, 8, 8), "neuron": "plif"}, 16, BOTH),
    ("spiking-resnet8", {"widths": (4, 8, 8)}, 16, ("spikingjelly",)),
    ("spiking-cnn", {"widths": (4, 8)}, 16, BOTH),
]
# layouts NIR cannot express, and why (NIR has no max-pool and no product of two signals)
UNEXPORTABLE = [
    ("sew-resnet18", {"widths": (4, 4, 4, 4)}, "MaxPool2d"),
    ("spiking-resnet18", {"widths": (4, 4, 4, 4)}, "MaxPool2d"),
    ("sew-resnet8", {"widths": (4, 4, 4), "connect": "AND"}, "only scaling traced data by a Python number"),
    ("sew-resnet8", {"widths": (4, 4, 4), "connect": "IAND"}, "operation '__rsub__'.*has no NIR equivalent"),
]


def make(name: str, **kwargs) -> torch.nn.Module:
    model = create_model(name, num_classes=5, T=T, in_channels=2, backend="torch", **kwargs)
    for m in model.modules():  # every residual branch active (several families zero-init their last BN)
        if isinstance(m, torch.nn.BatchNorm2d) and m.affine:
            torch.nn.init.constant_(m.weight, 1.0)
    return randomize_batchnorm(model.double())


def assert_same_spikes(got: dict, expected: dict, who: str) -> None:
    assert set(got) == set(expected), f"{who}: layers {sorted(set(got) ^ set(expected))}"
    for layer, s in expected.items():
        z = got[layer].reshape(s.shape).to(s.dtype)
        assert torch.equal(z, s), f"{who}, {layer}: {int((z != s).sum())} of {s.numel()} spikes differ"


@pytest.mark.parametrize("name,kwargs,size,peers", CASES)
def test_registered_architecture_runs_spike_for_spike_in_peers(tmp_path, name, kwargs, size, peers):
    torch.manual_seed(0)
    model = make(name, **kwargs)
    exported = to_nir(model, (2, size, size), dt=DT)
    nir.write(tmp_path / "model.nir", exported)
    read = nir.read(tmp_path / "model.nir")
    # the nodes as read, in the exported (topological) order: nir.read sorts them by name, which
    # makes NIRTorch's graph walk (the peers' importers) ~10x slower on deep graphs
    graph = nir.NIRGraph(nodes={k: read.nodes[k] for k in exported.nodes}, edges=read.edges,
                         metadata=read.metadata, type_check=False)
    x = torch.rand(B, 2, size, size, dtype=torch.float64) * 3
    logits, spikes = record_spikes(model, x)
    mixed = [0 < s.mean() < s.max() for s in spikes.values()]  # neither silent nor saturated
    assert sum(mixed) >= 0.75 * len(mixed), f"only {sum(mixed)} of {len(mixed)} layers both fire and rest"
    x_seq = x.unsqueeze(0).expand(T, *x.shape)

    ours = from_nir(graph)
    record: dict = {}
    ours.run_sequence(x_seq, record=record)
    by_layer: dict = {}
    for node_name, node in graph.nodes.items():
        if isinstance(node, (nir.LIF, nir.IF)):
            layer = node.metadata["snnres_layer"]
            by_layer[layer] = by_layer.get(layer, 0) + record[node_name]
    assert_same_spikes(by_layer, spikes, "snnres from_nir")
    torch.testing.assert_close(record[ours.output_name].mean(0), logits, rtol=1e-9, atol=1e-9)

    if "spikingjelly" in peers:
        outputs, got = spikingjelly_run(graph, x_seq, DT)
        assert_same_spikes(got, spikes, "SpikingJelly")
        torch.testing.assert_close(outputs.mean(0), logits, rtol=1e-9, atol=1e-9)
    if "snntorch" in peers:
        outputs, got = snntorch_run(graph, x_seq)
        assert_same_spikes({k: v.double() for k, v in got.items()}, {k: v.flatten(2) for k, v in spikes.items()},
                           "snnTorch")
        torch.testing.assert_close(outputs.mean(0).double(), logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,kwargs,why", UNEXPORTABLE)
def test_layouts_nir_cannot_express_say_why(name, kwargs, why):
    with pytest.raises(ExportError, match=why):
        to_nir(make(name, **kwargs), (2, 16, 16))


def _family(name: str) -> str:
    """A fixed registered name itself, else its depth family's prefix (as the registry parses it)."""
    from snnres.models import registry

    return name if name in registry._MODELS else re.fullmatch(r"(.*?)(\d+)", name).group(1)


def test_every_registered_spiking_family_is_covered():
    from snnres.models import registry

    def spiking(name: str) -> bool:
        builder = registry._MODELS.get(name) or registry._FAMILIES[_family(name)][1]
        return not builder.__module__.endswith(".ann")

    covered = {_family(c.values[0] if hasattr(c, "values") else c[0]) for c in CASES}
    missing = {_family(n) for n in list_models() if spiking(n)} - covered
    assert not missing, f"add a small member of {sorted(missing)} to CASES (peer NIR round trip)"
