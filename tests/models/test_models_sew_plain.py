"""SEW-ResNet's connect functions, its zero-init, and the plain network beside it."""

import pytest
import torch

from snnres.models import SpikeElementWiseBlock, create_model


def _block_io(model, index, x):
    seen = {}
    block = model.blocks()[index]
    hooks = [block.register_forward_hook(lambda m, i, o: seen.__setitem__("io", (i[0], o))),
             block.branch.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o))]
    model(x)
    for h in hooks:
        h.remove()
    return block, seen["io"][0], seen["a"], seen["io"][1]


@pytest.mark.parametrize("connect,g", [("ADD", lambda a, s: a + s), ("AND", lambda a, s: a * s),
                                       ("IAND", lambda a, s: (1 - a) * s)])
def test_connect_function_on_spikes(connect, g):
    torch.manual_seed(0)
    model = create_model("sew-resnet8", T=3, connect=connect, backend="torch")
    block, s, a, out = _block_io(model, 0, torch.rand(2, 3, 8, 8) * 4)
    assert isinstance(block, SpikeElementWiseBlock) and isinstance(block.shortcut, torch.nn.Identity)
    assert bool(((s == 0) | (s == 1)).all()) and bool(((a == 0) | (a == 1)).all())  # spikes in, spikes out
    torch.testing.assert_close(out, g(a, s))
    if connect != "ADD":  # AND / IAND keep the stream binary
        assert bool(((out == 0) | (out == 1)).all())


def test_downsample_shortcut_is_spiking():
    model = create_model("sew-resnet18", num_classes=5, T=2, widths=(8, 8, 16, 16), backend="torch")
    shortcut = model.stages[1][0].shortcut
    assert [type(m).__name__ for m in shortcut] == ["SeqToANN", "SeqToANN", "LIF"]  # SN(BN(conv1x1))


@pytest.mark.parametrize("connect", ["ADD", "AND", "IAND"])
def test_zero_init_residual_starts_each_block_as_its_shortcut(connect):
    # SEW's zero_init_blocks: last BN weight 0 (and bias 1 for AND), so g(A, S) = S at the start
    torch.manual_seed(0)
    model = create_model("sew-resnet14", T=2, connect=connect, zero_init_residual=True, backend="torch")
    _, s, _, out = _block_io(model, 1, torch.rand(2, 3, 8, 8) * 4)
    torch.testing.assert_close(out, s)


def test_plain_network_is_the_branch_alone():
    model = create_model("spiking-resnet20", T=2, backend="torch")
    assert all(b.shortcut is None and b.connect is None for b in model.blocks())
    _, _, a, out = _block_io(model, 4, torch.rand(1, 3, 8, 8))
    assert torch.equal(a, out)
    with pytest.raises(ValueError, match="no shortcuts"):
        create_model("spiking-resnet20", connect="ADD")


def test_unknown_connect_or_neuron_is_refused():
    with pytest.raises(ValueError, match="ADD"):
        create_model("sew-resnet8", connect="OR")
    with pytest.raises(ValueError, match="plif"):
        create_model("sew-resnet8", neuron="lif")
