"""The architectures of snnres.models, event-driven vs dense: identical spikes, same logits."""

import numpy as np
import pytest
import torch

from sim_testnets import dense_run, dyadic_, frames_of, random_events
from snnres.sim import EventSimulator

ms_resnet = pytest.importorskip("snnres.models.ms_resnet")

SENSOR = (16, 16, 2)


def check(net, seed, T=4, n_events=1500, sensor=SENSOR, strategy="fast"):
    rng = np.random.default_rng(seed)
    dyadic_(net, rng)  # also makes the zero-initialised last BN of each block non-zero
    events = random_events(rng, sensor, n_events)
    logits, spikes = dense_run(net, frames_of(events, sensor, T))
    out = EventSimulator(net, strategy=strategy).run(events, sensor, T, record=True)
    assert set(out.spike_trains) == set(spikes)
    for name, dense in spikes.items():
        assert torch.equal(out.spike_trains[name], dense), f"spikes of {name} differ"
    torch.testing.assert_close(out.logits, logits, rtol=1e-6, atol=1e-6)
    assert sum(out.spikes_per_layer.values()) > 0
    return out


@pytest.mark.parametrize("shortcut", ["conv", "avgpool-conv"])
def test_ms_resnet_membrane_shortcuts(shortcut, strategy):
    net = ms_resnet.ms_resnet(num_classes=5, T=4, in_channels=2, blocks=(1, 2), widths=(8, 16), strides=(1, 2),
                              stem="conv3", shortcut=shortcut)
    out = check(net, 0 if shortcut == "conv" else 1, strategy=strategy)
    # the projection shortcut reads the real-valued residual stream: MACs, not SOPs
    assert any(name.startswith("stages.1.0.shortcut") for name in out.macs)
    assert "stages.0.0.conv1.module" in out.sops


def test_ms_resnet_imagenet_stems(strategy):
    for seed, stem in enumerate(["conv7", "conv3x3-3"]):
        net = ms_resnet.ms_resnet(num_classes=4, T=3, in_channels=2, blocks=(1, 1), widths=(8, 8), strides=(1, 2),
                                  stem=stem)
        check(net, 10 + seed, T=3, sensor=(20, 18, 2), strategy=strategy)


models = pytest.importorskip("snnres.models")


@pytest.mark.parametrize("first_stride", [1, 2])
def test_ds_resnet_mlf(first_stride, strategy):
    net = models.create_model("ds-resnet8", num_classes=5, T=4, in_channels=2, widths=(8, 12, 16),
                              first_stride=first_stride)
    out = check(net, 20 + first_stride, strategy=strategy)
    assert "stages.1.0.shortcut.2" in out.spikes_per_layer  # the MLF of the projection shortcut


@pytest.mark.parametrize("connect,neuron", [("ADD", "if"), ("AND", "ms"), ("IAND", "plif"), ("ADD", "mlf")])
def test_sew_resnet(connect, neuron, strategy):
    net = models.create_model("sew-resnet8", num_classes=5, T=4, in_channels=2, connect=connect, neuron=neuron)
    check(net, 30 + len(connect) + len(neuron), strategy=strategy)


def test_sew_resnet_imagenet_layout_with_max_pool(strategy):
    net = models.create_model("sew-resnet18", num_classes=3, T=2, in_channels=2, widths=(8, 8, 16, 16))
    check(net, 40, T=2, sensor=(32, 32, 2), n_events=3000, strategy=strategy)


def test_plain_spiking_resnet_and_spiking_cnn(strategy):
    check(models.create_model("spiking-resnet8", num_classes=5, T=4, in_channels=2), 50, strategy=strategy)
    check(models.create_model("spiking-cnn", num_classes=5, T=4, in_channels=2, widths=(8, 8)), 51, strategy=strategy)
    check(models.create_model("spiking-cnn", num_classes=5, T=4, in_channels=2, widths=(8,), norm=False,
                              neuron="if"), 52, strategy=strategy)


def test_ann_baseline_is_rejected_with_the_layer_named():
    from snnres.sim import UnsupportedLayerError

    name = next((n for n in models.list_models() if n.startswith("resnet")), None)
    if name is None:
        pytest.skip("no ANN baseline registered")
    with pytest.raises(UnsupportedLayerError, match="does not support layer"):
        EventSimulator(models.create_model(name, num_classes=3, in_channels=2))


def test_float_weights_ms_resnet_within_tolerance(strategy):
    """Ordinary float32 weights (BN folded, sums in another order): logits within float tolerance."""
    torch.manual_seed(0)
    net = models.create_model("ms-resnet-cifar8", num_classes=5, T=4, in_channels=2, widths=(8, 16, 16))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    net.eval()
    events = random_events(np.random.default_rng(60), SENSOR, 1500)
    logits, spikes = dense_run(net, frames_of(events, SENSOR, 4))
    out = EventSimulator(net, strategy=strategy).run(events, SENSOR, 4, record=True)
    torch.testing.assert_close(out.logits, logits, rtol=1e-4, atol=1e-4)
    total = sum(int(s.numel()) for s in spikes.values())
    differing = sum(int((out.spike_trains[k] != s).sum()) for k, s in spikes.items())
    assert differing <= total * 1e-3  # only neurons within rounding of the threshold may flip
