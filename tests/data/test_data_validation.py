"""Bad recordings and stray entries, each written in the data set's real on-disk format.

Every bad file must give an error that names the file and what is wrong (or, with
``skip_corrupt=True``, be left out and counted in one warning); nothing is deleted; the data
loaders and the event simulator share one validation function.
"""

import warnings

import h5py
import numpy as np
import pytest
import torch

from snnres.data import CorruptFileError, DatasetLayoutError, make_dataset
from test_data_tonic import encode_nmnist, write_nmnist, write_shd

GOOD = dict(x=[1, 5, 30], y=[2, 33, 0], p=[1, 0, 1], t=[0, 1000, 2000])


def nmnist_with(tmp_path, name, content: bytes, digit=3):
    """Ten good recordings (one per digit) and ``content`` written as ``Train/<digit>/<name>``."""
    write_nmnist(tmp_path, per_digit=1)
    bad = tmp_path / "NMNIST" / "Train" / str(digit) / name
    bad.write_bytes(content)
    return bad


RANDOM_BYTES = np.random.default_rng(7).integers(0, 256, 5 * 400, dtype=np.uint8).tobytes()
HTML = b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>denied</body></html>\n"

BAD_BIN = {
    "zero-byte": (b"", "empty"),
    "truncated to nothing": (b"\x05\x07\x80", "not a whole number of 5-byte"),
    "truncated mid-record": (encode_nmnist(**GOOD)[:-2], "not a whole number of 5-byte"),
    "HTML page": (HTML + b" " * (-len(HTML) % 5), "HTML page"),
    "random bytes": (RANDOM_BYTES, "not sorted|outside the sensor"),
    "unsorted timestamps": (encode_nmnist(x=[1, 2, 3], y=[1, 2, 3], p=[0, 1, 0], t=[500, 100, 900]), "not sorted"),
    "outside the sensor": (encode_nmnist(x=[1, 40], y=[1, 2], p=[0, 1], t=[0, 10]), r"x spans \[1, 40\]"),
    # an N-Caltech101 recording (ATIS, 240x180) among N-MNIST's 34x34 ones
    "another sensor": (encode_nmnist(x=[0, 120, 233], y=[0, 90, 171], p=[0, 1, 1], t=[0, 50, 99]),
                       r"at least 234x172.*another sensor.*34x34"),
}


@pytest.mark.parametrize("case", list(BAD_BIN))
def test_bad_nmnist_file_is_named_or_skipped(tmp_path, case):
    content, problem = BAD_BIN[case]
    bad = nmnist_with(tmp_path, "00099.bin", content)
    with pytest.raises(CorruptFileError, match=problem) as info:
        make_dataset("nmnist", root=tmp_path, T=4)  # checked when the set is built (cache on)
    assert info.value.path == bad and str(bad) in str(info.value)
    assert "skip_corrupt=True" in str(info.value)
    lazy = make_dataset("nmnist", root=tmp_path, T=4, cache=False)  # without a cache: when read
    position = [str(lazy.path(i)) for i in range(len(lazy))].index(str(bad))
    with pytest.raises(CorruptFileError, match=problem):
        lazy[position]
    with pytest.warns(UserWarning, match=r"skipped 1 corrupt file\(s\) of 11 \(first: .*00099.bin"):
        skipping = make_dataset("nmnist", root=tmp_path, T=4, skip_corrupt=True)
    assert len(skipping) == 10 and sorted(skipping.targets) == list(range(10))
    assert bad.read_bytes() == content  # never deleted or rewritten
    assert all(skipping[i][0].shape == (4, 2, 34, 34) for i in range(10))


def gesture_root(tmp_path, rows: np.ndarray):
    folder = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_led"
    folder.mkdir(parents=True)
    good = np.array([[3, 4, 1, 0], [100, 7, 0, 2], [127, 127, 1, 5]])
    np.save(folder / "0.npy", good)
    np.save(folder / "1.npy", rows)
    return folder / "1.npy"


BAD_NPY = {
    "NaN timestamp": (np.array([[3, 4, 1, 0.0], [5, 6, 0, np.nan]]), r"NaN or inf in t \(row 1"),
    "inf coordinate": (np.array([[np.inf, 4, 1, 0.0], [5, 6, 0, 1.0]]), r"NaN or inf in x"),
    "polarity 2": (np.array([[3, 4, 2, 0], [5, 6, 0, 1]]), r"polarity values \[2\]"),
    "polarity -1": (np.array([[3, 4, -1, 0], [5, 6, 1, 1]]), r"polarity values \[-1\]"),
    "negative timestamps": (np.array([[3, 4, 1, -5], [5, 6, 0, 1]]), "negative timestamps"),
    "unsorted": (np.array([[3, 4, 1, 9], [5, 6, 0, 1]]), "not sorted"),
    # a DAVIS346 recording (346x260) placed in the 128x128 DVS128 set
    "another sensor": (np.array([[3, 4, 1, 0], [345, 259, 0, 1]]), r"at least 346x260.*128x128"),
    "wrong shape": (np.zeros((5, 3)), r"shape \(N, 4\)"),
    "no events": (np.zeros((0, 4)), "no events"),
}


@pytest.mark.parametrize("case", list(BAD_NPY))
def test_bad_gesture_npy_is_named(tmp_path, case):
    rows, problem = BAD_NPY[case]
    bad = gesture_root(tmp_path, rows)
    with pytest.raises(CorruptFileError, match=problem) as info:
        make_dataset("dvs-gesture", root=tmp_path, T=2)
    assert info.value.path == bad
    with pytest.warns(UserWarning, match="skipped 1 corrupt file"):
        assert len(make_dataset("dvs-gesture", root=tmp_path, T=2, skip_corrupt=True)) == 1


def test_bad_shd_sample_is_named_with_its_index(tmp_path):
    rng = np.random.default_rng(2)
    samples = [(np.sort(rng.uniform(0, 0.8, 30)).astype(np.float32), rng.integers(0, 700, 30).astype(np.uint16), k)
               for k in range(3)]
    samples[1][0][4] = np.nan
    (tmp_path / "SHD").mkdir()
    write_shd(tmp_path / "SHD" / "shd_train.h5", samples, rng)
    with pytest.raises(CorruptFileError, match=r"shd_train.h5 \(sample 1\): NaN or inf among the spike times"):
        make_dataset("shd", root=tmp_path, T=3)
    with pytest.warns(UserWarning, match="skipped 1 corrupt file"):
        kept = make_dataset("shd", root=tmp_path, T=3, skip_corrupt=True)
    assert kept.targets == [0, 2]
    # a unit outside the 700 channels
    with h5py.File(tmp_path / "SHD" / "shd_train.h5", "a") as file:
        file["spikes/times"][1] = np.sort(rng.uniform(0, 0.8, 30)).astype(np.float32)
        units = file["spikes/units"][2].copy()
        units[0] = 700
        file["spikes/units"][2] = units
    with pytest.raises(CorruptFileError, match=r"sample 2\).*x spans \[\d+, 700\].*700 channels"):
        make_dataset("shd", root=tmp_path, T=3)


def test_stray_folder_with_recordings_is_an_error_naming_it(tmp_path):
    write_nmnist(tmp_path, per_digit=1)
    stray = tmp_path / "NMNIST" / "Train" / "seven"
    stray.mkdir()
    (stray / "00001.bin").write_bytes(encode_nmnist(**GOOD))
    # Tonic alone would fail with "invalid literal for int()" or, for a folder "17", label it 7
    with pytest.raises(DatasetLayoutError, match=r"Train/seven: not a class folder") as info:
        make_dataset("nmnist", root=tmp_path)
    assert "<digit 0-9>" in str(info.value) and "skip_corrupt=True" in str(info.value)
    with pytest.warns(UserWarning, match=r"ignored 1 stray entry .*seven"):
        dataset = make_dataset("nmnist", root=tmp_path, skip_corrupt=True)
    assert len(dataset) == 10 and stray.is_dir()


@pytest.mark.parametrize("where,named,why", [
    ("17/00001.bin", "17", "not a class folder"),  # Tonic would label it 7 (the name's last digit)
    ("00001.bin", "00001.bin", "a file where only class folders belong"),
    ("3/old/00001.bin", "3/old", "a folder inside a class folder"),
])
def test_misplaced_recordings_are_named(tmp_path, where, named, why):
    write_nmnist(tmp_path, per_digit=1)
    path = tmp_path / "NMNIST" / "Train" / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_nmnist(**GOOD))
    with pytest.raises(DatasetLayoutError) as info:
        make_dataset("nmnist", root=tmp_path)
    assert f"{tmp_path / 'NMNIST' / 'Train' / named}: {why}" in str(info.value)


def test_file_of_another_format_is_named_in_a_warning(tmp_path):
    write_nmnist(tmp_path, per_digit=1)
    np.save(tmp_path / "NMNIST" / "Train" / "4" / "7.npy", np.zeros((3, 4)))
    with pytest.warns(UserWarning, match=r"stray entry .*7\.npy \(not a \.bin recording\)"):
        assert len(make_dataset("nmnist", root=tmp_path)) == 10


def test_harmless_strays_are_named_hidden_files_ignored(tmp_path):
    write_nmnist(tmp_path, per_digit=1)
    train = tmp_path / "NMNIST" / "Train"
    (train / "README.txt").write_text("notes")
    (train / "5" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (train / "5" / "._00000.bin").write_bytes(b"\0\5\x16\7")  # a macOS resource fork
    with pytest.warns(UserWarning, match=r"ignored 1 stray entry .*README.txt") as record:
        dataset = make_dataset("nmnist", root=tmp_path)
    assert len(record) == 1 and len(dataset) == 10


def test_clean_folder_gives_no_warning(tmp_path):
    write_nmnist(tmp_path, per_digit=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(make_dataset("nmnist", root=tmp_path, T=3)) == 20


def test_dataloader_workers_keep_the_error_type(tmp_path):
    bad = nmnist_with(tmp_path, "00099.bin", b"")
    dataset = make_dataset("nmnist", root=tmp_path, T=2, cache=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=11, num_workers=1)
    with pytest.raises(CorruptFileError, match=str(bad)):
        next(iter(loader))


def test_one_validation_for_loaders_and_simulator():
    from snnres.data import validate
    from snnres.sim import events

    assert events.check_events is validate.check_events
    assert events.check_sensor_size is validate.check_sensor_size
