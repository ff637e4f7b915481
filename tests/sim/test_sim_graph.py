"""The graph's facts found once per node list (``Graph.consumers``, ``last_use``, ``sizes``): right, and
found again after a node is added."""

from snnres.sim.graph import AddNode, Graph, InputNode, NeuronNode


def test_memoised_facts_follow_added_nodes():
    """Hand-worked: input 0 -> neuron 1 -> neuron 2, then an add of 1 and 2 appended after the facts
    were first asked for: 1 gains a later reader and 2 its first."""
    g = Graph()
    g.add(InputNode("input", (), (2, 4, 4)))
    g.add(NeuronNode("a", (0,), (2, 4, 4)))
    g.add(NeuronNode("b", (1,), (2, 4, 4)))
    assert [g.consumers(i) for i in range(3)] == [[1], [2], []]
    assert g.last_use() == [1, 2, 2] and g.sizes() == [32, 32, 32]
    g.add(AddNode("sum", (1, 2), (2, 2, 2)))
    assert [g.consumers(i) for i in range(4)] == [[1], [2, 3], [3], []]
    assert g.last_use() == [1, 3, 3, 3] and g.sizes() == [32, 32, 32, 8]
