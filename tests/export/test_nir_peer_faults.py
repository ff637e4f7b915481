"""The peers' NIR faults listed in snnres/export/README.md, each shown on the installed library.

If a peer fixes one, its test fails: update the README's table (and the workaround) then.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import nir
import numpy as np
import pytest
import torch

DT = 1e-4


def quiet_import(graph):
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):
        return import_from_nir(graph)


def flatten_affine_graph() -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type=np.array([2, 3])),
             "flat": nir.Flatten(input_type={"input": np.array([2, 3])}, start_dim=0),
             "fc": nir.Affine(weight=np.ones((4, 6), dtype=np.float32), bias=np.zeros(4, dtype=np.float32)),
             "output": nir.Output(output_type=np.array([4]))}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "flat"), ("flat", "fc"), ("fc", "output")])


def test_snntorch_flatten_flattens_the_batch():
    module = quiet_import(flatten_affine_graph())
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        module(torch.ones(2, 2, 3))  # [2*2*3] reaches a 6-input layer
    y, _ = module(torch.ones(1, 2, 3))
    assert y.shape == (4,)  # batch 1 runs, its batch dim gone


def test_snntorch_if_import():
    def if_graph(r):
        nodes = {"input": nir.Input(input_type=np.array([3])), "if": nir.IF(r=np.full(3, r), v_threshold=np.ones(3)),
                 "output": nir.Output(output_type=np.array([3]))}
        return nir.NIRGraph(nodes=nodes, edges=[("input", "if"), ("if", "output")])

    with pytest.raises(AssertionError, match="r != 1 not supported"):
        quiet_import(if_graph(1 / DT))  # NIR's IF with dv/dt = r I at step dt (SpikingJelly, snnres)
    leaky = [m for m in quiet_import(if_graph(1.0)).modules() if type(m).__name__ == "Leaky"]
    assert len(leaky) == 1 and float(leaky[0].beta) == pytest.approx(0.9)  # an IF imported as a leaky neuron


def test_snntorch_import_fixes_dt():
    nodes = {"input": nir.Input(input_type=np.array([2])),
             "lif": nir.LIF(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
             "output": nir.Output(output_type=np.array([2]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "lif"), ("lif", "output")], metadata={"dt": 1e-3})
    leaky = [m for m in quiet_import(graph).modules() if type(m).__name__ == "Leaky"][0]
    assert float(leaky.beta.reshape(-1)[0]) == pytest.approx(1 - 1e-4 / 2e-3)  # not 1 - 1e-3 / 2e-3 = 0.5


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_snntorch_export_needs_full_shape_parameters_and_ignore_dims():
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    def net(beta, threshold):
        return torch.nn.Sequential(torch.nn.Linear(3, 4), snn.Leaky(beta=beta, threshold=threshold, init_hidden=True))

    full = (torch.full((4,), 0.5), torch.ones(4))
    with contextlib.redirect_stdout(io.StringIO()):
        with pytest.raises(ValueError, match="type mismatch"):
            export_to_nir(net(*full), torch.rand(1, 3))  # the batch dim in the Input type
        with pytest.raises(ValueError, match="type mismatch"):
            export_to_nir(net(0.5, 1.0), torch.rand(1, 3), ignore_dims=[0])  # 0-d beta and threshold
        with pytest.raises(AssertionError, match="same shape"):
            export_to_nir(net(0.5, torch.ones(4)), torch.rand(1, 3), ignore_dims=[0])
        export_to_nir(net(*full), torch.rand(1, 3), ignore_dims=[0])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_snntorch_export_writes_every_reset_as_hard_and_immediate():
    import snntorch as snn
    import snntorch.utils
    from snntorch.export_nir import export_to_nir

    from snnres.export import from_nir

    net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False),
                              snn.Leaky(beta=torch.full((1,), 0.9), threshold=torch.ones(1), init_hidden=True))
    torch.nn.init.ones_(net[0].weight)  # default: reset_mechanism="subtract", reset_delay=True
    with contextlib.redirect_stdout(io.StringIO()):
        graph = export_to_nir(net, torch.rand(1, 1), ignore_dims=[0])
    assert np.all(graph.nodes["1"].v_reset == 0)
    x = torch.full((10, 1, 1), 0.7)
    snntorch.utils.reset(net)
    with torch.no_grad():
        theirs = torch.stack([net(x_t) for x_t in x]).reshape(-1)
    ours = from_nir(graph).run_sequence(x).reshape(-1)  # the graph as NIR defines it
    assert theirs.tolist() == [0, 1, 0, 1, 1, 0, 1, 0, 1, 1] and ours.tolist() == [0, 1, 0, 1] * 2 + [0, 1]


def test_spikingjelly_fires_on_ties():
    from spikingjelly.activation_based.nir_exchange.from_nir import import_from_nir

    nodes = {"input": nir.Input(input_type=np.array([1])),
             "if": nir.IF(r=np.full(1, 1 / DT), v_threshold=np.ones(1), v_reset=np.zeros(1)),
             "output": nir.Output(output_type=np.array([1]))}
    module = import_from_nir(nir.NIRGraph(nodes=nodes, edges=[("input", "if"), ("if", "output")]), dt=DT)
    y, _ = module(torch.ones(1, 1))
    assert float(y) == 1.0  # v = 1 = v_threshold: NIR's v > v_threshold says no spike


def test_norse_export_tau_and_import_gaps():
    norse_torch = pytest.importorskip("norse.torch")
    from norse.torch.utils.export_nir import _extract_norse_module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cell = norse_torch.LIFBoxCell()  # tau_mem_inv = 100 / s: tau = 10 ms
        node = _extract_norse_module(cell, dt=1e-3)
        assert float(np.asarray(node.tau).reshape(-1)[0]) == pytest.approx(1e-5)  # dt * tau, not 1e-2
        nodes = {"input": nir.Input(input_type=np.array([1, 4, 4])),
                 "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
                 "flat": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0),
                 "fc": nir.Affine(weight=np.ones((2, 4)), bias=np.zeros(2)),
                 "output": nir.Output(output_type=np.array([2]))}
        module = norse_torch.from_nir(nir.NIRGraph(nodes=nodes, edges=[("input", "pool"), ("pool", "flat"),
                                                                       ("flat", "fc"), ("fc", "output")]))
    assert "pool" not in dict(module.named_children())  # AvgPool2d is dropped without a word
    with pytest.raises(RuntimeError, match="1x16 and 4x2"):
        module(torch.ones(1, 1, 4, 4))
