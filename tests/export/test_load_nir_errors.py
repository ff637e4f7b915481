"""``from_nir`` refuses malformed graphs at load, with a message naming the node and the field."""

from __future__ import annotations

import h5py
import nir
import numpy as np
import pytest
import torch

from snnres.export import ExportError, from_nir

DT = 1e-4


def lif(n: int, **override) -> nir.LIF:
    p = dict(tau=np.full(n, 2 * DT), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
    p.update(override)
    return nir.LIF(**p)


def graph(nodes: dict, edges: list, n_in: int = 4) -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type=np.array([n_in])), **nodes}
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def affine(n_out: int, n_in: int) -> nir.Affine:
    return nir.Affine(weight=np.ones((n_out, n_in)), bias=np.zeros(n_out))


def feedforward(neuron: nir.NIRNode, n: int = 3) -> nir.NIRGraph:
    return graph({"fc": affine(n, 4), "lif": neuron, "output": nir.Output(output_type=np.array([n]))},
                 [("input", "fc"), ("fc", "lif"), ("lif", "output")])


def test_edges_to_missing_nodes_name_the_edge():
    g = graph({"fc": affine(3, 4), "output": nir.Output(output_type=np.array([3]))},
              [("input", "fc"), ("fc", "ghost"), ("fc", "output")])
    with pytest.raises(ExportError, match=r"edge \('fc', 'ghost'\): its destination 'ghost' is not a node"):
        from_nir(g)
    g = graph({"fc": affine(3, 4), "output": nir.Output(output_type=np.array([3]))},
              [("input", "fc"), ("fc_", "output"), ("fc", "output")])
    with pytest.raises(ExportError, match=r"source 'fc_' is not a node.*close: 'fc'"):
        from_nir(g)


@pytest.mark.parametrize("field,value,message", [
    ("v_threshold", np.array([1.0, np.nan, 1.0]), "LIF 'lif': v_threshold has 1 NaN or infinite values of 3"),
    ("tau", np.array([]), r"LIF 'lif': tau is empty"),
    ("r", np.array([1.0, np.inf, 1.0]), "LIF 'lif': r has 1 NaN or infinite"),
    ("tau", np.full(3, DT / 10), r"LIF 'lif': tau = 1e-05 s is shorter than the step dt = 0.0001 s.*Norse"),
])
def test_bad_neuron_parameters_name_node_and_field(field, value, message):
    node = lif(3)
    setattr(node, field, value)  # past nir's own shape check, as an in-memory graph may be
    with pytest.raises(ExportError, match=message):
        from_nir(feedforward(node), dt=DT)


def test_inconsistent_shapes_are_found_at_load():
    # a 9-neuron layer whose LIF parameters describe 3 neurons
    g = graph({"fc": affine(9, 4), "lif": lif(3), "output": nir.Output(output_type=np.array([9]))},
              [("input", "fc"), ("fc", "lif"), ("lif", "output")])
    with pytest.raises(ExportError, match=r"LIF 'lif': tau has shape \(3,\), but the node gets inputs of shape \(9,\)"):
        from_nir(g)
    g = graph({"fc": affine(3, 5), "output": nir.Output(output_type=np.array([3]))},
              [("input", "fc"), ("fc", "output")])
    with pytest.raises(ExportError, match=r"Affine 'fc': weight \[3, 5\] takes 5 input features, but its edges bring shape \[4\]"):
        from_nir(g)
    g = graph({"a": affine(3, 4), "b": affine(2, 4), "output": nir.Output(output_type=np.array([3]))},
              [("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")])
    with pytest.raises(ExportError, match=r"'output' \(Output\) sums edges of different shapes: 'b' gives \[2\]"):
        from_nir(g)
    g = graph({"fc": affine(3, 4), "output": nir.Output(output_type=np.array([7]))},
              [("input", "fc"), ("fc", "output")])
    with pytest.raises(ExportError, match=r"Output 'output' declares output type \[7\], but its edges bring shape \[3\]"):
        from_nir(g)
    conv = nir.Conv2d(input_shape=(6, 6), weight=np.ones((4, 3, 3, 3)), stride=1, padding=1, dilation=1,
                      groups=1, bias=np.zeros(4))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2, 6, 6])), "conv": conv,
                            "output": nir.Output(output_type=np.array([4, 6, 6]))},
                     edges=[("input", "conv"), ("conv", "output")], type_check=False)
    with pytest.raises(ExportError, match=r"Conv2d 'conv': weight \[4, 3, 3, 3\] with groups=1 takes 3 input channels, but its edges bring 2"):
        from_nir(g)


def test_structure_errors():
    out = nir.Output(output_type=np.array([3]))
    g = graph({"fc": affine(3, 4), "output": out}, [("input", "fc"), ("input", "fc"), ("fc", "output")])
    with pytest.raises(ExportError, match=r"edge \('input', 'fc'\) appears twice"):
        from_nir(g)
    g = graph({"fc": affine(3, 4), "stray": affine(3, 4), "output": out},
              [("input", "fc"), ("fc", "output"), ("stray", "output")])
    with pytest.raises(ExportError, match=r"'stray' \(Affine\) feeds the output but cannot be reached from the Input"):
        from_nir(g)
    g = graph({"in2": nir.Input(input_type=np.array([4])), "fc": affine(3, 4), "output": out},
              [("input", "fc"), ("in2", "fc"), ("fc", "output")])
    with pytest.raises(ExportError, match=r"one Input and one Output node.*\['input', 'in2'\]"):
        from_nir(g)

    class Mystery(nir.NIRNode):
        def __init__(self):
            self.input_type, self.output_type, self.metadata = {"input": None}, {"output": None}, {}

    g = graph({"odd": Mystery(), "output": nir.Output(output_type=np.array([4]))},
              [("input", "odd"), ("odd", "output")])
    with pytest.raises(ExportError, match=r"NIR node 'odd' is a Mystery, which from_nir cannot run \(supported: .*CubaLIF"):
        from_nir(g)
    g = feedforward(nir.Delay(delay=np.full(3, 1.5 * DT)))
    with pytest.raises(ExportError, match=r"Delay 'lif': delay must be whole.*multiples of dt"):
        from_nir(g, dt=DT)


def test_files_that_are_not_nir_name_their_path(tmp_path):
    text = tmp_path / "notes.nir"
    text.write_text("not a graph")
    with pytest.raises(ExportError, match=rf"{text}.*not a NIR file.*HDF5"):
        from_nir(text)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing.nir")):
        from_nir(tmp_path / "missing.nir")
    good = tmp_path / "good.nir"
    nir.write(good, feedforward(lif(3)))
    with h5py.File(good, "r+") as f:  # a node type this nir does not know
        del f["node/nodes/lif/type"]
        f["node/nodes/lif"].create_dataset("type", data="Mystery", dtype=h5py.string_dtype())
    with pytest.raises(ExportError, match=rf"cannot read the NIR graph in {good}.*does not know"):
        from_nir(good)


def test_shapes_declared_stale_in_a_file_are_rechecked_by_ours(tmp_path):
    """nir.read type-checks a subgraph's declared types and refuses a stale one (the NIR paper's
    braille graph as Rockpool ships it); from_nir reads it unchecked and checks the shapes the
    edges really bring."""
    inner = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([4])), "lif": lif(3),
                                "output": nir.Output(output_type=np.array([3]))},
                         edges=[("input", "lif"), ("lif", "output")], type_check=False)
    g = graph({"fc": affine(3, 4), "hidden": inner, "output": nir.Output(output_type=np.array([3]))},
              [("input", "fc"), ("fc", "hidden"), ("hidden", "output")])
    path = tmp_path / "stale.nir"
    nir.write(path, g)
    with pytest.raises(ValueError, match="type mismatch"):
        nir.read(path)
    net = from_nir(path, dtype=torch.float64)
    assert net.run_sequence(torch.ones(5, 2, 4, dtype=torch.float64)).shape == (5, 2, 3)
