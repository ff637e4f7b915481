"""The held-out validation part of a training folder (``val_fraction``): fixed, class-balanced,
disjoint from the training part, and the same whatever the order files were written in."""

import numpy as np
import pytest

from snnres.data import make_dataset
from test_data_tonic import encode_nmnist, write_nmnist


def names(dataset):
    return {str(dataset.path(i)) for i in range(len(dataset))}


def test_val_fraction_holds_out_a_balanced_part_of_the_training_folder(tmp_path):
    write_nmnist(tmp_path, per_digit=10)
    write_nmnist(tmp_path, split="Test", per_digit=1, seed=5)
    train = make_dataset("nmnist", root=tmp_path, T=2, val_fraction=0.2)
    val = make_dataset("nmnist", root=tmp_path, T=2, train=False, val_fraction=0.2)
    everything = make_dataset("nmnist", root=tmp_path, T=2)
    assert len(train) == 80 and len(val) == 20
    assert np.bincount(val.targets).tolist() == [2] * 10  # two of the ten of each digit
    assert names(train).isdisjoint(names(val)) and names(train) | names(val) == names(everything)
    assert all("/Train/" in name for name in names(val))  # not the test folder
    assert val.augment is None and train.augment is not None
    again = make_dataset("nmnist", root=tmp_path, T=2, train=False, val_fraction=0.2)
    assert names(again) == names(val)
    for i in range(len(val)):  # labels follow the files
        assert val[i][1] == int(val.path(i).parent.name)


def test_split_depends_on_the_names_only(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for root, order in ((first, range(12)), (second, reversed(range(12)))):
        for k in order:  # written in another order
            folder = root / "NMNIST" / "Train" / str(k % 2)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{k:05d}.bin").write_bytes(encode_nmnist([k % 34], [1], [1], [k]))
    held = [{p.replace(str(root), "") for p in names(make_dataset("nmnist", root=root, train=False, val_fraction=0.25))}
            for root in (first, second)]
    assert held[0] == held[1] and len(held[0]) == 4
    # one more recording leaves the held-out choice of the others unchanged, or moves at most one
    (first / "NMNIST" / "Train" / "0" / "00099.bin").write_bytes(encode_nmnist([3], [3], [0], [5]))
    grown = {p.replace(str(first), "") for p in names(make_dataset("nmnist", root=first, train=False, val_fraction=0.25))}
    assert len(held[0] - grown) <= 1


def test_val_fraction_is_checked(tmp_path):
    write_nmnist(tmp_path, per_digit=1)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        make_dataset("nmnist", root=tmp_path, val_fraction=1.0)
