"""Recurrent NIR graphs: every cycle runs with a one-step delay, cut after a stateful node.

Oracles: steps worked out by hand, and plain loops written here from the stated discretisation
(a recurrent edge carries its source's output of the previous step; the recurrent weights and
their bias run in the current step, as snnTorch's ``RLeaky``: ``mem[t] = beta mem[t-1] + x[t] +
W s[t-1] + b``).
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from snnres.export import from_nir

DT = 1e-4


def if_node(n, threshold=1.0):
    return nir.IF(r=np.full(n, 1 / DT), v_threshold=np.full(n, threshold), v_reset=np.zeros(n))


def recurrent_if(w_rec: float, bias: float) -> nir.NIRGraph:
    """input -> lif <-> w_rec (lif -> w_rec -> lif), lif -> output; one neuron."""
    nodes = {"input": nir.Input(input_type=np.array([1])), "lif": if_node(1),
             "w_rec": nir.Affine(weight=np.array([[w_rec]]), bias=np.array([bias])),
             "output": nir.Output(output_type=np.array([1]))}
    edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


@pytest.mark.parametrize("strategy", ["auto", "reference"])
def test_self_recurrence_by_hand(strategy):
    # v[t] = v[t-1] + x[t] + 0.5 s[t-1] + 0.1, x = 0.6, IF threshold 1, reset to 0:
    # t0: 0.7 | t1: 1.4 -> spike, 0 | t2: 0.6 + 0.5 + 0.1 = 1.2 -> spike, 0 | t3: 1.2 -> spike | ...
    net = from_nir(recurrent_if(0.5, 0.1), dtype=torch.float64, strategy=strategy)
    assert net.recurrent and net.delayed["w_rec"] == ["lif"]  # cut after the neuron, not before it
    y = net.run_sequence(torch.full((5, 1, 1), 0.6, dtype=torch.float64))
    assert y.reshape(-1).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    # inhibitory, no bias: t0: 0.6 | t1: 1.2 -> spike, 0 | t2: 0.6 - 0.5 = 0.1 | t3: 0.7 | t4: 1.3 -> spike
    net = from_nir(recurrent_if(-0.5, 0.0), dtype=torch.float64, strategy=strategy)
    y = net.run_sequence(torch.full((5, 1, 1), 0.6, dtype=torch.float64))
    assert y.reshape(-1).tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]


def two_layer_loop():
    """input -> a -> w_ab -> b -> w_ba -> a (a loop through two neurons), b -> output."""
    rng = np.random.default_rng(0)
    w_ab, w_ba, w_in = rng.normal(size=(3, 4)), rng.normal(size=(4, 3)), rng.uniform(0, 1, (4, 2))
    nodes = {"input": nir.Input(input_type=np.array([2])), "w_in": nir.Linear(weight=w_in),
             "a": if_node(4, 0.8), "w_ab": nir.Linear(weight=w_ab), "b": if_node(3, 0.5),
             "w_ba": nir.Affine(weight=w_ba, bias=np.full(4, 0.05)), "output": nir.Output(output_type=np.array([3]))}
    edges = [("input", "w_in"), ("w_in", "a"), ("a", "w_ab"), ("w_ab", "b"), ("b", "w_ba"), ("w_ba", "a"),
             ("b", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges), (w_in, w_ab, w_ba)


def test_a_loop_through_two_neurons_is_cut_after_the_later_one():
    graph, (w_in, w_ab, w_ba) = two_layer_loop()
    net = from_nir(graph, dtype=torch.float64)
    assert net.delayed["w_ba"] == ["b"] and net.inputs["b"] == ["w_ab"]  # a -> b stays in the same step
    x = np.random.default_rng(1).uniform(0, 2, (10, 2, 2))
    va, vb, sb, expected = np.zeros((2, 4)), np.zeros((2, 3)), np.zeros((2, 3)), []
    for t in range(10):  # the oracle: the loop written out
        va = va + x[t] @ w_in.T + sb @ w_ba.T + 0.05
        sa = (va > 0.8).astype(float)
        va = np.where(sa > 0, 0.0, va)
        vb = vb + sa @ w_ab.T
        sb = (vb > 0.5).astype(float)
        vb = np.where(sb > 0, 0.0, vb)
        expected.append(sb)
    y = net.run_sequence(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_array_equal(y, np.stack(expected))
    assert 0 < y.mean() < 1


def test_a_delay_in_a_loop_keeps_its_own_length():
    """lif -> delay(2 steps) -> lif: the loop's delay is the Delay's two steps, not three."""
    nodes = {"input": nir.Input(input_type=np.array([1])), "lif": if_node(1, threshold=0.5),
             "delay": nir.Delay(delay=np.array([2 * DT])), "output": nir.Output(output_type=np.array([1]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "lif"), ("lif", "delay"), ("delay", "lif"),
                                             ("lif", "output")], type_check=False)
    x = torch.zeros(7, 1, 1, dtype=torch.float64)
    x[0] = 1.5  # one spike at t0 echoes back at t2, t4, t6
    y = from_nir(graph, dtype=torch.float64).run_sequence(x).reshape(-1).tolist()
    assert y == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_a_stream_in_chunks_equals_one_run():
    graph, _ = two_layer_loop()
    net = from_nir(graph, dtype=torch.float64)
    x = torch.rand(9, 3, 2, dtype=torch.float64) * 2
    whole = net.run_sequence(x)
    first, state = net.run_sequence(x[:4], return_state=True)
    second = net.run_sequence(x[4:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=0, atol=0)


def test_nested_recurrent_subgraph_braille_layout(tmp_path):
    """The NIR paper's braille network: Affine -> subgraph(CubaLIF <-> Affine) -> Affine -> CubaLIF."""
    rng = np.random.default_rng(2)

    def cuba(n, tau_syn, tau_mem):
        return nir.CubaLIF(tau_syn=np.full(n, tau_syn * DT), tau_mem=np.full(n, tau_mem * DT), r=np.full(n, tau_mem),
                           v_leak=np.zeros(n), v_threshold=np.full(n, 0.5), v_reset=np.zeros(n), w_in=np.full(n, tau_syn))

    w1, w_rec, w2 = rng.normal(size=(6, 4)), rng.normal(size=(6, 6)) * 0.5, rng.normal(size=(3, 6))
    hidden = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([6])), "lif": cuba(6, 2.0, 4.0),
                                 "lin": nir.Linear(weight=w_rec), "output": nir.Output(output_type=np.array([6]))},
                          edges=[("input", "lif"), ("lif", "lin"), ("lin", "lif"), ("lif", "output")])
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([4])), "fc1": nir.Linear(weight=w1),
                                "hidden": hidden, "fc2": nir.Linear(weight=w2), "lif2": cuba(3, 1.5, 2.0),
                                "output": nir.Output(output_type=np.array([3]))},
                         edges=[("input", "fc1"), ("fc1", "hidden"), ("hidden", "fc2"), ("fc2", "lif2"),
                                ("lif2", "output")])
    nir.write(tmp_path / "braille.nir", graph)
    net = from_nir(tmp_path / "braille.nir", dtype=torch.float64)
    assert net.delayed["hidden.lin"] == ["hidden.lif"]
    x = rng.uniform(0, 2, (12, 2, 4))

    def cuba_step(i, v, drive, tau_syn, tau_mem):  # NIR Euler, w_in = tau_syn, r = tau_mem: i' = i/... + x
        i = i + (tau_syn * drive - i) / tau_syn
        v = v + (tau_mem * i - v) / tau_mem
        s = (v > 0.5).astype(float)
        return i, np.where(s > 0, 0.0, v), s

    i1, v1, s1, i2, v2, expected = np.zeros((2, 6)), np.zeros((2, 6)), np.zeros((2, 6)), np.zeros((2, 3)), np.zeros((2, 3)), []
    for t in range(12):
        i1, v1, s1 = cuba_step(i1, v1, x[t] @ w1.T + s1 @ w_rec.T, 2.0, 4.0)
        i2, v2, s2 = cuba_step(i2, v2, s1 @ w2.T, 1.5, 2.0)
        expected.append(s2)
    y = net.run_sequence(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_array_equal(y, np.stack(expected))
    assert 0 < y.mean() < 1
