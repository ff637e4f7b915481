"""synthetic-dvs: determinism, shapes, balance, and that the class needs time to be seen."""

import time

import numpy as np
import pytest
import torch
from tonic.transforms import ToFrame

from snnres.data import make_dataset
from snnres.data.synthetic import CLASSES


def stack(dataset):
    frames = torch.stack([dataset[i][0] for i in range(len(dataset))]).numpy()
    return frames, np.array(dataset.targets)


def test_shapes_dtypes_and_balance():
    dataset = make_dataset("synthetic-dvs", num_samples=60, T=6, size=24)
    frames, label = dataset[0]
    assert frames.shape == (6, 2, 24, 24) and frames.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < len(CLASSES)
    assert np.bincount(dataset.targets, minlength=10).tolist() == [6] * 10
    assert dataset.sensor_size == (24, 24, 2)
    assert len(make_dataset("synthetic-dvs")) == 512 and len(make_dataset("synthetic-dvs", train=False)) == 128
    assert make_dataset("synthetic-dvs")[0][0].shape == (8, 2, 32, 32)


def test_deterministic_per_seed_and_splits_differ():
    a = make_dataset("synthetic-dvs", num_samples=30, seed=3)
    b = make_dataset("synthetic-dvs", num_samples=30, seed=3)
    c = make_dataset("synthetic-dvs", num_samples=30, seed=4)
    test = make_dataset("synthetic-dvs", num_samples=30, seed=3, train=False)
    for i in range(len(a)):
        np.testing.assert_array_equal(a.events(i), b.events(i))
        assert torch.equal(a[i][0], b[i][0])
    assert any(len(a.events(i)) != len(c.events(i)) for i in range(len(a)))
    assert any(len(a.events(i)) != len(test.events(i)) for i in range(len(a)))


def test_events_are_tonic_structured_and_frames_are_tonic_toframe():
    dataset = make_dataset("synthetic-dvs", num_samples=20, T=5)
    for i in range(len(dataset)):
        events = dataset.events(i)
        assert set(events.dtype.names) == {"x", "y", "t", "p"}
        assert np.all(np.diff(events["t"]) >= 0)
        assert events["x"].max() < 32 and events["y"].max() < 32 and events["x"].min() >= 0
        expected = ToFrame(sensor_size=dataset.sensor_size, n_time_bins=5)(events)
        np.testing.assert_array_equal(dataset[i][0].numpy(), expected)


def test_generation_is_fast():
    # a guard against a gross regression (a per-event Python loop takes minutes), not a timing:
    # ~1 s on an idle 2-core CPU, several times that on a loaded one
    start = time.perf_counter()
    make_dataset("synthetic-dvs", seed=11)
    assert time.perf_counter() - start < 30.0


def _features(frames):
    """Translation-invariant per-bin features: ON/OFF counts and the ON-minus-OFF centroid."""
    n, T, _, H, W = frames.shape
    yy, xx = np.mgrid[0:H, 0:W]
    count = frames.sum((-1, -2)) + 1e-6  # n, T, 2
    cy = (frames * yy).sum((-1, -2)) / count
    cx = (frames * xx).sum((-1, -2)) / count
    features = np.stack([count[..., 0], count[..., 1], cy[..., 1] - cy[..., 0], cx[..., 1] - cx[..., 0]], -1)
    return features.reshape(n, -1)


def _logistic_accuracy(x_train, y_train, x_test, y_test):
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train = torch.tensor((x_train - mean) / std, dtype=torch.float32)
    x_test = torch.tensor((x_test - mean) / std, dtype=torch.float32)
    torch.manual_seed(0)
    linear = torch.nn.Linear(x_train.shape[1], len(CLASSES))
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=200)
    target = torch.tensor(y_train)

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x_train), target) + 1e-3 * linear.weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return float((linear(x_test).argmax(1).numpy() == y_test).mean())


def test_time_summed_frame_is_near_chance_but_time_tells_the_class():
    train_frames, y_train = stack(make_dataset("synthetic-dvs", seed=5))
    test_frames, y_test = stack(make_dataset("synthetic-dvs", seed=5, train=False))
    summed_train, summed_test = train_frames.sum(1, keepdims=True), test_frames.sum(1, keepdims=True)
    chance = 1 / len(CLASSES)
    # the same feature extractor, once on the time-summed frame, once per time bin
    with_time = _logistic_accuracy(_features(train_frames), y_train, _features(test_frames), y_test)
    summed = _logistic_accuracy(_features(summed_train), y_train, _features(summed_test), y_test)
    assert with_time > 0.9
    assert summed < 2 * chance
    # raw pixels too: the summed image alone stays near chance
    raw_summed = _logistic_accuracy(
        summed_train.reshape(len(y_train), -1), y_train, summed_test.reshape(len(y_test), -1), y_test
    )
    assert raw_summed < 2 * chance


@pytest.mark.parametrize("bad", [{"size": 4}, {"T": 0}, {"num_samples": 0}])
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError):
        make_dataset("synthetic-dvs", **bad)


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(TypeError, match="num_samples"):
        make_dataset("synthetic-dvs", samples=3)


def test_batches_through_a_dataloader_with_workers():
    dataset = make_dataset("synthetic-dvs", num_samples=16, T=4)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, num_workers=2)
    frames, labels = next(iter(loader))
    assert frames.shape == (8, 4, 2, 32, 32) and labels.dtype == torch.int64
    assert torch.equal(frames[3], dataset[3][0])
