"""The fast strategy against the reference strategy (``sim/reference.py``: plain numpy, every neuron
every step) with ordinary float weights, where the sums round: the same spikes, counts, logits
and final membranes bit for bit, so the fast kernels add the same terms in the same order."""

import numpy as np
import pytest
import torch

from sim_testnets import float_, random_conv_net, random_events
from snnres.sim import EventSimulator


def run(net, strategy, events=None, sensor=None, T=None, frames=None, chunk=None):
    """One recording (events, or frames in pieces of ``chunk`` steps): ``(result, membranes)``."""
    stream = EventSimulator(net, strategy=strategy).stream(record=True)
    if frames is None:
        stream.push_events_tonic(events, sensor, T)
    else:
        for lo in range(0, len(frames), chunk or len(frames)):
            stream.push_frames(frames[lo:lo + (chunk or len(frames))])
    return stream.result(), {j: v for j, (v, _) in stream.state.membranes.items()}


def assert_identical(fast, ref):
    (a, va), (b, vb) = fast, ref
    assert torch.equal(a.logits, b.logits)
    assert a.sops == b.sops and a.macs == b.macs
    assert a.spikes_per_layer == b.spikes_per_layer and a.neuron_updates == b.neuron_updates
    for name, train in b.spike_trains.items():
        assert torch.equal(a.spike_trains[name], train), f"spikes of {name} differ"
    assert va.keys() == vb.keys()
    for j, v in vb.items():
        np.testing.assert_array_equal(va[j].view(np.uint32), v.view(np.uint32))
    assert sum(b.spikes_per_layer.values()) > 0


def both(net, **kwargs):
    return run(net, "fast", **kwargs), run(net, "reference", **kwargs)


@pytest.mark.parametrize("variant", range(8))
def test_random_float_networks(variant):
    rng = np.random.default_rng(200 + variant)
    sensor, T = [(17, 15, 2), (16, 16, 1), (20, 13, 2), (11, 19, 2)][variant % 4], 6
    net = float_(random_conv_net(rng, sensor, variant), rng)
    assert_identical(*both(net, events=random_events(rng, sensor, 1500), sensor=sensor, T=T))


@pytest.mark.parametrize("kind", ["hard", "soft", "no-decay-input", "mlf", "mlf-2-soft"])
@pytest.mark.parametrize("density", [3, 0.2])
def test_fusable_float_networks(kind, density):
    """Layers of 32-256 channels: busy inputs gather (and fuse with their neurons), quiet ones scatter."""
    from test_sim_fused import LIFS, fusable_net

    rng = np.random.default_rng(len(kind) + int(10 * density))
    sensor, T = (16, 14, 2), 6
    net = float_(fusable_net(rng, LIFS[kind]), rng)
    events = random_events(rng, sensor, int(16 * 14 * 2 * density))
    assert_identical(*both(net, events=events, sensor=sensor, T=T))


def test_wide_float_network_streamed():
    """A conv gathered on its own (``conv_gather``), y-dilation, a 3x5 kernel; frames in pieces."""
    from test_sim_gather import wide_net

    rng = np.random.default_rng(7)
    net = float_(wide_net(rng), rng)
    frames = torch.from_numpy((rng.random((8, 2, 14, 18)) < 0.4).astype(np.float32))
    fast = run(net, "fast", frames=frames, chunk=3)
    assert_identical(fast, run(net, "reference", frames=frames))
    assert_identical(fast, run(net, "reference", frames=frames, chunk=1))


@pytest.mark.parametrize("arch", ["ms-resnet", "ms-resnet-avgpool", "ds-resnet8", "sew-resnet8-iand", "sew-and"])
def test_residual_float_models(arch):
    from snnres import models
    from snnres.models.ms_resnet import ms_resnet

    rng = np.random.default_rng(len(arch))
    if arch.startswith("ms-resnet"):
        net = ms_resnet(num_classes=5, T=4, in_channels=2, blocks=(1, 1), widths=(32, 64), strides=(1, 2),
                        stem="conv3", shortcut="avgpool-conv" if arch.endswith("avgpool") else "conv")
    elif arch == "ds-resnet8":
        net = models.create_model(arch, num_classes=5, T=4, in_channels=2, widths=(32, 32, 64))
    else:
        net = models.create_model("sew-resnet8", num_classes=5, T=4, in_channels=2, widths=(32, 32, 64),
                                  connect="IAND" if arch.endswith("iand") else "AND")
    float_(net, rng)
    sensor = (16, 16, 2)
    assert_identical(*both(net, events=random_events(rng, sensor, 16 * 16 * 2 * 2), sensor=sensor, T=4))
