"""Tonic event sets read from tiny files written in the real on-disk formats.

Oracles: the events we wrote (hand-encoded), and Tonic's own classes and `ToFrame` run directly
on the same files.
"""

import os
import urllib.error
import warnings

import h5py
import numpy as np
import pytest
import tonic
from tonic.transforms import ToFrame

from snnres.data import CorruptFileError, DatasetNotFoundError, DownloadError, make_dataset


def encode_nmnist(x, y, p, t):
    """N-MNIST 40-bit records: x(8) y(8) p(1) t(23), big-endian (Orchard's format)."""
    x, y, p, t = (np.asarray(v, dtype=np.uint32) for v in (x, y, p, t))
    record = np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], 1)
    return record.astype(np.uint8).tobytes()


def random_events(rng, n, width, height, span_us=300_000):
    t = np.sort(rng.integers(0, span_us, n))
    return rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n), t


def write_nmnist(root, split="Train", per_digit=2, seed=0):
    rng = np.random.default_rng(seed)
    written = {}
    for digit in range(10):
        folder = root / "NMNIST" / split / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_digit):
            events = random_events(rng, 50 + 10 * k, 34, 34)
            path = folder / f"{k:05d}.bin"
            path.write_bytes(encode_nmnist(*events))
            written[str(path)] = (events, digit)
    return written


def files_under(root):
    return {
        os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, fs in os.walk(root)
        for f in fs
        if ".cache" not in d
    }


@pytest.fixture
def tonic_reference(monkeypatch):
    """Tonic's own classes with only the archive check patched away (as Tonic's tests do)."""

    def build(cls, root, **kwargs):
        monkeypatch.setattr(cls, "_check_exists", lambda self: True)
        return cls(str(root), **kwargs)

    return build


def test_nmnist_decodes_what_was_written_and_matches_tonic(tmp_path, tonic_reference):
    written = write_nmnist(tmp_path)
    before = files_under(tmp_path)
    dataset = make_dataset("nmnist", root=tmp_path, T=4, augment=False)
    reference = tonic_reference(tonic.datasets.NMNIST, tmp_path, train=True)
    assert len(dataset) == len(reference) == 20
    assert dataset.sensor_size == (34, 34, 2)
    for i in range(len(dataset)):
        assert str(dataset.path(i)) == reference.data[i]  # Tonic's order: folders, then files, sorted
        (x, y, p, t), digit = written[reference.data[i]]
        events = dataset.events(i)
        np.testing.assert_array_equal(events["x"], x)
        np.testing.assert_array_equal(events["y"], y)
        np.testing.assert_array_equal(events["p"], p)
        np.testing.assert_array_equal(events["t"], t)
        frames, label = dataset[i]
        assert label == digit == reference.targets[i]
        expected = ToFrame(sensor_size=(34, 34, 2), n_time_bins=4)(reference[i][0])
        np.testing.assert_array_equal(frames.numpy(), expected)
        assert frames.shape == (4, 2, 34, 34)
    assert files_under(tmp_path) == before  # nothing outside .cache touched
    assert (tmp_path / ".cache" / "nmnist" / "train").is_dir()


def test_nmnist_hand_computed_frame(tmp_path):
    folder = tmp_path / "NMNIST" / "Test" / "7"
    folder.mkdir(parents=True)
    # 4 events over 0..400 us, T=2: Tonic's bins are [0, 200) and [200, 400); the last event
    # (t=400) falls on the end edge and is not counted.
    (folder / "a.bin").write_bytes(encode_nmnist([1, 2, 2, 3], [0, 5, 5, 1], [1, 0, 0, 1], [0, 199, 200, 400]))
    frames, label = make_dataset("nmnist", root=tmp_path, train=False, T=2, cache=False)[0]
    expected = np.zeros((2, 2, 34, 34), np.float32)
    expected[0, 1, 0, 1] = 1
    expected[0, 0, 5, 2] = 1
    expected[1, 0, 5, 2] = 1
    np.testing.assert_array_equal(frames.numpy(), expected)
    assert label == 7


def test_dvs_gesture_npy_layout(tmp_path, tonic_reference):
    rng = np.random.default_rng(1)
    written = {}
    for user, lighting in [(1, "fluorescent"), (2, "led")]:
        folder = tmp_path / "DVSGesture" / "ibmGestureTest" / f"user{user:02d}_{lighting}"
        folder.mkdir(parents=True)
        for label in (0, 4, 10):
            x, y, p, t = random_events(rng, 80, 128, 128, span_us=2000)  # t in ms here
            np.save(folder / f"{label}.npy", np.stack([x, y, p, t], 1).astype(np.int64))
            written[str(folder / f"{label}.npy")] = (x, y, p, t * 1000, label)
    dataset = make_dataset("dvs-gesture", root=tmp_path, train=False, T=3)
    reference = tonic_reference(tonic.datasets.DVSGesture, tmp_path, train=False)
    assert len(dataset) == 6
    assert sorted(map(str, map(dataset.path, range(6)))) == sorted(reference.data)
    for i in range(len(dataset)):
        x, y, p, t_us, label = written[str(dataset.path(i))]
        events = dataset.events(i)
        np.testing.assert_array_equal(events["x"], x)
        np.testing.assert_array_equal(events["t"], t_us)
        np.testing.assert_array_equal(events["p"].astype(int), p)
        frames, got = dataset[i]
        assert got == label
        same = reference[reference.data.index(str(dataset.path(i)))][0]
        np.testing.assert_array_equal(frames.numpy(), ToFrame(sensor_size=(128, 128, 2), n_time_bins=3)(same))
    # downsampled to 64x64 by Tonic's Downsample
    small = make_dataset("dvs-gesture", root=tmp_path, train=False, T=3, downsample=0.5)
    assert small[0][0].shape == (3, 2, 64, 64)
    assert small[0][0].sum() == dataset[0][0].sum()


def write_shd(path, samples, rng):
    with h5py.File(path, "w") as file:
        times = file.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        units = file.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u, _) in enumerate(samples):
            times[i], units[i] = t, u
        file["labels"] = np.array([s[2] for s in samples], dtype=np.uint16)
        file["extra/keys"] = np.array([f"digit-{k}".encode() for k in range(20)])
        file["extra/speaker"] = np.zeros(len(samples), dtype=np.uint16)


def test_shd_h5(tmp_path, tonic_reference):
    rng = np.random.default_rng(2)
    samples = []
    for label in (3, 17, 0):
        n = 40
        samples.append((np.sort(rng.uniform(0, 0.8, n)).astype(np.float32), rng.integers(0, 700, n).astype(np.uint16), label))
    (tmp_path / "SHD").mkdir()
    write_shd(tmp_path / "SHD" / "shd_train.h5", samples, rng)
    dataset = make_dataset("shd", root=tmp_path, T=5, augment=False)
    reference = tonic_reference(tonic.datasets.SHD, tmp_path, train=True)
    assert dataset.targets == [3, 17, 0]
    assert dataset.classes[17] == "digit-17"
    for i in range(3):
        frames, label = dataset[i]
        assert frames.shape == (5, 1, 1, 700) and label == samples[i][2]
        expected = ToFrame(sensor_size=(700, 1, 1), n_time_bins=5)(reference[i][0])
        np.testing.assert_array_equal(frames.numpy().reshape(expected.shape), expected)
        assert frames.sum() == (expected.sum())
        np.testing.assert_array_equal(dataset.events(i)["x"], samples[i][1])
    with pytest.raises(DatasetNotFoundError, match="shd_test.h5"):
        make_dataset("shd", root=tmp_path, train=False)


def test_ncaltech101_split_and_labels(tmp_path):
    rng = np.random.default_rng(3)
    for category, count in [("accordion", 10), ("BACKGROUND_Google", 4), ("yin_yang", 3)]:
        folder = tmp_path / "NCALTECH101" / "Caltech101" / category
        folder.mkdir(parents=True)
        for k in range(count):
            (folder / f"image_{k:04d}.bin").write_bytes(encode_nmnist(*random_events(rng, 30, 200, 150)))
    train = make_dataset("ncaltech101", root=tmp_path, T=2)
    test = make_dataset("ncaltech101", root=tmp_path, train=False, T=2)
    assert train.classes == ["BACKGROUND_Google", "accordion", "yin_yang"]
    assert sorted(train.targets) == [0] * 4 + [1] * 9 + [2] * 3
    assert sorted(test.targets) == [1]
    assert train[0][0].shape == (2, 2, 180, 240)


def test_cifar10_dvs_layout_and_bad_file(tmp_path):
    folder = tmp_path / "CIFAR10DVS" / "airplane"
    folder.mkdir(parents=True)
    for k in range(10):
        (folder / f"cifar10_airplane_{k}.aedat4").write_bytes(b"not an aedat file")
    train = make_dataset("cifar10-dvs", root=tmp_path, T=4, cache=False)  # no cache: checked as read
    test = make_dataset("cifar10-dvs", root=tmp_path, train=False, T=4, cache=False)
    assert len(train) == 9 and len(test) == 1 and train.classes[0] == "airplane"
    assert "cifar10_airplane_9" in str(test.path(0))
    with pytest.raises(CorruptFileError, match=r"cifar10_airplane_\d\.aedat4: no '#!AER-DAT4' header"):
        train[0]
    with pytest.raises(CorruptFileError, match=r"cifar10_airplane_0\.aedat4"):  # with the cache: when built
        make_dataset("cifar10-dvs", root=tmp_path, T=4)


def test_missing_files_error_names_folder_layout_and_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        make_dataset("nmnist", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "NMNIST" / "Train") in message
    assert "<digit 0-9>/*.bin" in message and "download=True" in message
    assert list(tmp_path.iterdir()) == []


def test_download_failure_is_said_plainly(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", no_network)
    with pytest.raises(DownloadError) as info:
        make_dataset("nmnist", root=tmp_path, download=True)
    message = str(info.value)
    assert "could not download" in message and "network" in message
    assert tonic.datasets.NMNIST.train_url in message


def test_truncated_event_file_names_the_file_or_is_skipped(tmp_path):
    write_nmnist(tmp_path, per_digit=1)
    bad = tmp_path / "NMNIST" / "Train" / "3" / "00000.bin"
    bad.write_bytes(bad.read_bytes()[:-2])
    dataset = make_dataset("nmnist", root=tmp_path, cache=False)
    with pytest.raises(CorruptFileError, match="00000.bin") as info:
        dataset[3]
    assert "3" in str(info.value.path.parent.name)
    with pytest.warns(UserWarning, match="skipped 1 corrupt file"):
        skipping = make_dataset("nmnist", root=tmp_path, skip_corrupt=True, cache=False)
    assert len(skipping) == 9 and 3 not in skipping.targets
    assert bad.exists()  # never deleted


def test_corrupt_npy_names_the_file(tmp_path):
    folder = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_led"
    folder.mkdir(parents=True)
    np.save(folder / "1.npy", np.zeros((5, 3)))
    (folder / "2.npy").write_bytes(b"\x93NUMPY garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = make_dataset("dvs-gesture", root=tmp_path, cache=False)
    for i in range(2):
        with pytest.raises(CorruptFileError, match=r"[12]\.npy"):
            dataset[i]


def test_augmentation_keeps_shape_and_is_off_for_test(tmp_path):
    write_nmnist(tmp_path, per_digit=1)
    write_nmnist(tmp_path, split="Test", per_digit=1)
    train = make_dataset("nmnist", root=tmp_path, T=3)
    test = make_dataset("nmnist", root=tmp_path, T=3, train=False)
    assert train.augment is not None and test.augment is None
    frames, _ = train[0]
    assert frames.shape == (3, 2, 34, 34) and frames.dtype.is_floating_point
    assert frames.sum() <= make_dataset("nmnist", root=tmp_path, T=3, augment=False)[0][0].sum()
