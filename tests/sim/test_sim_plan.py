"""The fast strategy's plan (``plan.Planner``): each choice worked out by hand at its break-even point,
the static facts of a network, and the printed plan."""

import numpy as np
import pytest
import torch
from torch import nn

from sim_testnets import TimeSequential, random_events
from snnres.neurons import LIF, MLF
from snnres.sim import EventSimulator
from snnres.sim.plan import CostModel, block_width

SHAPE = (2, 16, 16)  # (C, H, W)


def planner_of(*layers, costs=CostModel()):
    sim = EventSimulator(TimeSequential(*layers).eval(), costs=costs)
    return sim.planner(SHAPE), sim.graph(SHAPE)


def node_index(graph, name):
    return next(j for j, n in enumerate(graph.nodes) if n.name == name)


def test_fused_conv_at_its_break_even_points():
    """Conv 2 -> 32 (3x3, pad 1) before a LIF layer of 32 channels, 4 steps of 16 x 16: 1024 windows.
    Events a window = n * 9 / 1024, density = n / 2048: the fused pass pays from 0.5 a window at
    >= 0.15% density (n >= 57) or from 0.4% density at any number a window (n >= 9)."""
    planner, graph = planner_of(nn.Conv2d(2, 32, 3, padding=1), LIF())
    j, node = 1, graph.nodes[1]
    assert [planner.synapse(j, node, n, 4).kernel for n in (0, 8, 9, 57)] == \
        ["scatter", "scatter", "gather+neuron", "gather+neuron"]
    higher = planner_of(nn.Conv2d(2, 32, 3, padding=1), LIF(), costs=CostModel(fused_any_density=1.0))[0]
    assert [higher.synapse(j, node, n, 4).kernel for n in (56, 57)] == ["scatter", "gather+neuron"]
    step = planner.synapse(j, node, 2048, 4)  # 18 events a window
    assert (step.width, step.joined, step.rows) == (32, True, False)
    assert "18 events/window, density 100.000%" in step.reason and "joined rows" in step.reason
    assert planner.neuron(2, graph.nodes[2], node.name).kernel == "fused"


def test_conv_gathered_alone_from_eight_events_a_window():
    """A 64-channel conv read by a pool (not a neuron layer) is gathered on its own from 8 events a
    window: n * 9 / 1024 >= 8 from n = 911."""
    planner, graph = planner_of(nn.Conv2d(2, 64, 3, padding=1), nn.AvgPool2d(1), LIF())
    assert [planner.synapse(1, graph.nodes[1], n, 4).kernel for n in (910, 911)] == ["scatter", "gather"]
    assert planner.synapse(1, graph.nodes[1], 911, 4).width == 64


def test_static_facts():
    """Register blocks, row passes (blocks over 256 KB), narrow layers, too many levels, global pools."""
    assert [block_width(c) for c in (32, 64, 96, 128, 256, 12)] == [32, 64, 32, 128, 128, 0]
    assert [block_width(c, levels=3) for c in (64, 96, 128)] == [64, 32, 64]
    planner, graph = planner_of(
        nn.Conv2d(2, 256, 3, padding=1), LIF(),          # 2 x 9 x 128 x 4 bytes: no row passes
        nn.Conv2d(256, 256, 3, padding=1), LIF(),        # 256 x 9 x 128 x 4 = 1.2 MB: row passes
        nn.Conv2d(256, 12, 1), LIF(),                    # 12 channels: no register block
        nn.Conv2d(12, 64, 1), MLF(levels=9),             # 9 levels > 8
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 3))
    first, second = (node_index(graph, name) for name in ("0", "2"))
    assert planner.convs[first]["rows"] is False and planner.convs[second]["rows"] is True
    assert planner.synapse(second, graph.nodes[second], 10 ** 6, 4).rows
    narrow = node_index(graph, "4")
    assert planner.synapse(narrow, graph.nodes[narrow], 10 ** 6, 4).reason == "not gathered: 12 outputs < a 64-channel block"
    kinds = {name: planner.neuron(node_index(graph, name), graph.nodes[node_index(graph, name)], None)
             for name in ("3", "5", "7")}
    assert [k.kernel for k in kinds.values()] == ["bits", "step", "step"]
    assert "12 channels" in kinds["5"].reason and "9 levels > 8" in kinds["7"].reason
    pool = node_index(graph, "8")
    assert planner.pool(pool, graph.nodes[pool]).kernel == "scatter"  # a 9-level MLF's counts, not one-level bits
    planner, graph = planner_of(nn.Conv2d(2, 64, 3, padding=1), LIF(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                nn.Linear(64, 3))
    assert planner.pool(3, graph.nodes[3]).kernel == "channel-counts"


def test_a_run_reports_the_plan_it_followed():
    """Every node's step, in order, printed one line each; a quiet and a busy recording plan differently."""
    rng = np.random.default_rng(0)
    net = TimeSequential(nn.Conv2d(2, 32, 3, padding=1), nn.BatchNorm2d(32), LIF(v_threshold=0.3),
                         nn.Conv2d(32, 64, 3, padding=1), LIF(v_threshold=0.3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 3)).eval()
    sim = EventSimulator(net)
    busy = sim.run(random_events(rng, (16, 16, 2), 4000), (16, 16, 2), 4)
    quiet = sim.run(random_events(rng, (16, 16, 2), 3), (16, 16, 2), 4)
    assert [s.layer for s in busy.plan.steps] == ["0", "2", "3", "4", "5", "7"]
    assert busy.plan.kernels()["0"] == "gather+neuron" and quiet.plan.kernels()["0"] == "scatter"
    assert busy.plan.kernels()["2"] == "fused" and quiet.plan.kernels()["2"] == "bits"
    lines = str(busy.plan).splitlines()
    assert lines[0].split() == ["layer", "kernel", "why"] and len(lines) == 7
    assert lines[1].split()[:2] == ["0", "gather+neuron"]
    assert EventSimulator(net, strategy="reference").run(random_events(rng, (16, 16, 2), 30), (16, 16, 2), 4).plan is None


@pytest.mark.parametrize("name, value", [("gather_window", 8.0), ("fused_window", 0.5), ("fused_density", 0.0015),
                                         ("fused_any_density", 0.004), ("joined_window", 1.5),
                                         ("row_pass_bytes", 256 << 10)])
def test_cost_model_defaults_are_the_measured_break_even_points(name, value):
    assert getattr(CostModel(), name) == value
