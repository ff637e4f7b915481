"""``from_nir`` on every NIR 1.0.8 node it runs, against hand-worked steps and plain loops.

The oracles: a few steps worked out by hand (ties included: NIR fires on ``v > v_threshold``),
and ``euler`` below, NIR's equations stepped by forward Euler one neuron at a time in Python
floats. Both strategies (snnres's LIF where it maps exactly, and the plain reference) must agree.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from snnres.export import from_nir
from snnres.export.load_neurons import NIRNeuron

DT = 1e-4
STRATEGIES = ("auto", "reference")


def chain(*nodes, n_in: int) -> nir.NIRGraph:
    """Input(n_in) -> nodes... -> Output, with the output shape of the last node."""
    names = ["input"] + [f"n{i}" for i in range(len(nodes))] + ["output"]
    graph_nodes = {"input": nir.Input(input_type=np.array([n_in]))}
    graph_nodes.update({f"n{i}": node for i, node in enumerate(nodes)})
    graph_nodes["output"] = nir.Output(output_type=np.array([n_in if not hasattr(nodes[-1], "weight")
                                                              else nodes[-1].weight.shape[0]]))
    return nir.NIRGraph(nodes=graph_nodes, edges=list(zip(names[:-1], names[1:])), type_check=False)


def run(graph, x_seq, **kw) -> torch.Tensor:
    net = from_nir(graph, dt=kw.pop("dt", DT), dtype=torch.float64, **kw)
    with torch.no_grad():  # snnres's LIF keeps a surrogate gradient; these tests read values
        return net.run_sequence(torch.as_tensor(x_seq, dtype=torch.float64)[:, None])[:, 0]


def euler(kind: str, p: dict, x_seq: np.ndarray, dt: float) -> np.ndarray:
    """NIR's neuron equations, forward Euler, one neuron at a time (the test's own oracle)."""
    out = np.zeros_like(x_seq)
    for n in range(x_seq.shape[1]):
        q = {k: float(np.broadcast_to(v, x_seq.shape[1:])[n]) for k, v in p.items()}
        i = 0.0
        v = {"IF": q.get("v_reset", 0.0), "I": 0.0}.get(kind, q.get("v_leak", 0.0))
        for t in range(x_seq.shape[0]):
            drive = x_seq[t, n]
            if kind.startswith("Cuba"):
                i = i + dt / q["tau_syn"] * (q["w_in"] * drive - i)
                drive = i
            if kind in ("IF", "I"):
                v = v + dt * q["r"] * drive
            else:
                tau = q["tau_mem"] if kind.startswith("Cuba") else q["tau"]
                v = v + dt / tau * (q["v_leak"] - v + q["r"] * drive)
            if kind in ("IF", "LIF", "CubaLIF"):
                out[t, n] = float(v > q["v_threshold"])
                v = q["v_reset"] if v > q["v_threshold"] else v
            else:
                out[t, n] = v
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_if_by_hand_ties_do_not_fire(strategy):
    """v += dt r I with dt r = 1, starting at v_reset; v equal to the threshold is no spike."""
    node = nir.IF(r=np.full(2, 1 / DT), v_threshold=np.array([1.0, 0.5]), v_reset=np.array([0.0, -0.25]))
    x = np.array([[0.5, 0.25], [0.5, 0.25], [0.6, 0.25], [0.2, 0.1]])
    # neuron 0 (from 0): v = 0.5, 1.0 (tie), 1.6 -> spike, reset to 0, then 0.2
    # neuron 1 (from -0.25): v = 0.0, 0.25, 0.5 (tie), 0.6 -> spike
    expected = np.array([[0, 0], [0, 0], [1, 0], [0, 1]], dtype=float)
    got = run(chain(node, n_in=2), x, strategy=strategy)
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_lif_per_neuron_parameters_and_v_leak_unlike_v_reset(strategy):
    p = dict(tau=np.array([2.0, 4.0, 1.0, 3.0]) * DT, r=np.array([1.0, 2.0, 0.5, 3.0]),
             v_leak=np.array([0.2, 0.0, -0.1, 0.3]), v_threshold=np.array([1.0, 0.8, 0.3, 0.9]),
             v_reset=np.array([0.0, 0.1, -0.5, 0.3]))
    x = np.random.default_rng(0).uniform(-0.2, 1.5, (12, 4))
    got = run(chain(nir.LIF(**p), n_in=4), x, strategy=strategy).numpy()
    np.testing.assert_array_equal(got, euler("LIF", p, x, DT))
    assert 0 < got.mean() < 1
    # neuron 0 by hand: v = 0.2 + 0.5 (0.2 - 0.2 + x0), i.e. v1 = 0.2 + x0/2 (tau = 2 dt, r = 1)
    assert got[0, 0] == float(0.2 + 0.5 * x[0, 0] > 1.0)


def test_uniform_lif_runs_as_snnres_lif_with_the_same_spikes():
    p = dict(tau=np.full(5, 2.5 * DT), r=np.full(5, 2.5), v_leak=np.full(5, 0.1), v_threshold=np.full(5, 0.7),
             v_reset=np.full(5, 0.1))
    graph = chain(nir.LIF(**p), n_in=5)
    fast = from_nir(graph, dt=DT, dtype=torch.float64, strategy="auto")
    assert type(fast.layer("n0")).__name__ == "LIF" and fast.layer("n0").params.fire == "gt"
    assert isinstance(from_nir(graph, dt=DT, strategy="reference").layer("n0"), NIRNeuron)
    x = np.random.default_rng(1).uniform(0, 1, (20, 5))
    for strategy in STRATEGIES:
        np.testing.assert_array_equal(run(graph, x, strategy=strategy).numpy(), euler("LIF", p, x, DT))


@pytest.mark.parametrize("kind", ["LI", "I", "CubaLI", "CubaLIF"])
def test_integrators_and_current_based_neurons(kind):
    rng = np.random.default_rng(2)
    p = {"tau": np.array([2.0, 5.0, 1.5]) * DT, "tau_syn": np.array([2.0, 3.0, 1.0]) * DT,
         "tau_mem": np.array([4.0, 2.0, 6.0]) * DT, "r": np.array([1.0, 0.5, 4.0]),
         "v_leak": np.array([0.0, 0.1, -0.2]), "w_in": np.array([1.0, 2.0, 0.5]),
         "v_threshold": np.array([0.6, 0.3, 0.5]), "v_reset": np.array([0.0, -0.1, 0.2])}
    fields = {"LI": ("tau", "r", "v_leak"), "I": ("r",), "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
              "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")}[kind]
    p = {k: p[k] for k in fields}
    if kind == "I":
        p["r"] = p["r"] / DT * 0.25  # dt r = 0.25: v grows by a quarter of the input per step
    node = getattr(nir, kind)(**p)
    x = rng.uniform(-0.5, 1.5, (10, 3))
    got = run(chain(node, n_in=3), x).numpy()
    np.testing.assert_allclose(got, euler(kind, p, x, DT), rtol=0, atol=1e-12)
    if kind == "CubaLIF":
        assert 0 < got.mean() < 1
    if kind == "I":  # by hand: the running sum of a quarter of the input, times r*dt / 0.25
        np.testing.assert_allclose(got[:, 0], np.cumsum(x[:, 0]) * 0.25, atol=1e-12)


def test_threshold_delay_and_scale_nodes():
    x = np.array([[0.2, 1.0, 3.0], [0.6, -1.0, 0.5], [0.4, 2.0, 0.0], [0.9, 0.0, 1.0]])
    threshold = run(chain(nir.Threshold(threshold=np.array([0.4, 0.0, 1.0])), n_in=3), x).numpy()
    np.testing.assert_array_equal(threshold, (x > [0.4, 0.0, 1.0]).astype(float))  # 0.4 > 0.4 is no spike
    delay = run(chain(nir.Delay(delay=np.array([0.0, 1.0, 2.0]) * DT), n_in=3), x).numpy()
    expected = np.stack([x[:, 0], np.r_[0.0, x[:-1, 1]], np.r_[0.0, 0.0, x[:-2, 2]]], axis=1)
    np.testing.assert_array_equal(delay, expected)
    scaled = run(chain(nir.Scale(scale=np.array([2.0, -1.0, 0.5])), n_in=3), x).numpy()
    np.testing.assert_array_equal(scaled, x * [2.0, -1.0, 0.5])


def test_single_value_parameters_broadcast_to_the_layer():
    """snnTorch writes one-value (0-d) parameters; one value is the whole layer's."""
    node = nir.LIF(tau=np.array(2 * DT), r=np.array(1.0), v_leak=np.array(0.0), v_threshold=np.array(0.5),
                   v_reset=np.array(0.0))
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])),
                                "fc": nir.Linear(weight=np.eye(3)), "lif": node,
                                "output": nir.Output(output_type=np.array([3]))},
                         edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    x = np.random.default_rng(3).uniform(0, 1.5, (6, 3))
    p = {k: np.asarray(getattr(node, k)) for k in ("tau", "r", "v_leak", "v_threshold", "v_reset")}
    np.testing.assert_array_equal(run(graph, x).numpy(), euler("LIF", p, x, DT))


def test_conv1d_sumpool_and_flatten_shapes():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(3, 2, 3))
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([2, 8])),
        "conv": nir.Conv1d(input_shape=8, weight=w, stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(3)),
        "flat": nir.Flatten(input_type={"input": np.array([3, 8])}, start_dim=0),
        "output": nir.Output(output_type=np.array([24]))},
        edges=[("input", "conv"), ("conv", "flat"), ("flat", "output")])
    x = torch.rand(2, 5, 2, 8, dtype=torch.float64)
    y = from_nir(graph, dtype=torch.float64).run_sequence(x)
    expected = torch.nn.functional.conv1d(x.flatten(0, 1), torch.from_numpy(w), padding=1).reshape(2, 5, 24)
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_snnres_fire_metadata_ge_fires_on_ties(tmp_path, strategy):
    """A node exported from a ``fire="ge"`` snnres neuron says so in its metadata, and fires on v = threshold."""
    node = nir.IF(r=np.full(1, 1 / DT), v_threshold=np.ones(1), v_reset=np.zeros(1), metadata={"fire": "ge"})
    nir.write(tmp_path / "ge.nir", chain(node, n_in=1))
    x = np.array([[0.5], [0.5], [0.5]])  # v = 0.5, 1.0 (tie: spike), 0.5
    np.testing.assert_array_equal(run(tmp_path / "ge.nir", x, strategy=strategy).numpy(), [[0.0], [1.0], [0.0]])
