"""Frame data sets (torchvision) from tiny files in the real formats, and the registry."""

import hashlib
import pickle

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from snnres.data import CorruptFileError, DatasetNotFoundError, list_datasets, make_dataset


def write_cifar10(root, monkeypatch, per_batch=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as file:
            pickle.dump({"data": data, "labels": labels}, file)
        images[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, file)

    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    # torchvision checks the official archives' md5 sums; point it at our files' sums instead
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, md5(n)] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5(n)] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5("batches.meta")})
    return images


def test_cifar10_pickle_batches(tmp_path, monkeypatch):
    images = write_cifar10(tmp_path, monkeypatch)
    train = make_dataset("cifar10", root=tmp_path, augment=False)
    test = make_dataset("cifar10", root=tmp_path, train=False)
    assert len(train) == 20 and len(test) == 4
    image, label = test[2]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    data, labels = images["test_batch"]
    assert label == labels[2]
    mean, std = torch.tensor((0.4914, 0.4822, 0.4465)), torch.tensor((0.2470, 0.2435, 0.2616))
    raw = torch.from_numpy(data[2].reshape(3, 32, 32).astype(np.float32) / 255)
    torch.testing.assert_close(image, (raw - mean[:, None, None]) / std[:, None, None])
    augmented, _ = make_dataset("cifar10", root=tmp_path)[0]
    assert augmented.shape == (3, 32, 32)


def test_cifar10_checksum_failure_names_the_folder(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"truncated")
    with pytest.raises(CorruptFileError, match="cifar-10-batches-py"):
        make_dataset("cifar10", root=tmp_path)


def test_cifar_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python") as info:
        make_dataset("cifar100", root=tmp_path)
    assert "download=True" in str(info.value)


def write_imagefolder(root, split):
    for k, wnid in enumerate(["n01440764", "n01443537"]):
        folder = root / "imagenet" / split / wnid
        folder.mkdir(parents=True)
        for j in range(2):
            Image.fromarray(np.full((40, 48, 3), 60 * k + j, np.uint8)).save(folder / f"img{j}.png")


def test_imagenet_image_folder(tmp_path):
    write_imagefolder(tmp_path, "train")
    write_imagefolder(tmp_path, "val")
    train = make_dataset("imagenet", root=tmp_path, image_size=16)
    val = make_dataset("imagenet", root=tmp_path, train=False, image_size=16)
    assert train.classes == ["n01440764", "n01443537"] and len(val) == 4
    image, label = val[3]
    assert image.shape == (3, 16, 16) and label == 1
    expected = (61 / 255 - torch.tensor((0.485, 0.456, 0.406))) / torch.tensor((0.229, 0.224, 0.225))
    torch.testing.assert_close(image[:, 8, 8], expected, atol=1e-5, rtol=0)
    assert train[0][0].shape == (3, 16, 16)


def test_imagenet_test_resize_and_autoaugment(tmp_path):
    # MS-ResNet-104's large test crop: Resize(320) then CenterCrop(288), not 288 / 0.875; its training
    # crops: RandomResizedCrop + AutoAugment (no flip).
    write_imagefolder(tmp_path, "train")
    write_imagefolder(tmp_path, "val")
    val = make_dataset("imagenet", root=tmp_path, train=False, image_size=24, resize=30)
    resize = val.transform.transforms[0]
    assert resize.size == 30 and val.transform.transforms[1].size == (24, 24) and val[0][0].shape == (3, 24, 24)
    assert make_dataset("imagenet", root=tmp_path, train=False, image_size=24).transform.transforms[0].size == 27
    names = [type(t).__name__ for t in make_dataset("imagenet", root=tmp_path, auto_augment=True).transform.transforms]
    assert names[:2] == ["RandomResizedCrop", "AutoAugment"] and "RandomHorizontalFlip" not in names


def test_imagenet_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"imagenet/val") as info:
        make_dataset("imagenet", root=tmp_path, train=False)
    assert "<wnid" in str(info.value) and "image-net.org" in str(info.value)
    write_imagefolder(tmp_path, "train")
    broken = tmp_path / "imagenet" / "train" / "n01440764" / "img0.png"
    broken.write_bytes(b"\x89PNG broken")
    with pytest.raises(CorruptFileError, match="img0.png"):
        make_dataset("imagenet", root=tmp_path)[0]


def test_registry_names_and_close_matches():
    assert list_datasets() == sorted(
        ["synthetic-dvs", "digits", "nmnist", "dvs-gesture", "cifar10-dvs", "ncaltech101", "shd", "cifar10", "cifar100",
         "imagenet"]
    )
    with pytest.raises(ValueError, match="'dvs-gesture'"):
        make_dataset("dvsgesture")
    with pytest.raises(ValueError, match="Known: cifar10"):
        make_dataset("mnist-zzz-qq")


@pytest.mark.parametrize("name", ["nmnist", "dvs-gesture", "cifar10-dvs", "ncaltech101", "shd", "cifar10", "cifar100", "imagenet"])
def test_every_file_backed_set_explains_missing_files(name, tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        make_dataset(name, root=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "expected layout" in message and "to get it" in message
    assert list(tmp_path.iterdir()) == []
