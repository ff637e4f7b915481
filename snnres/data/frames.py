"""Frame (image) data sets through torchvision: CIFAR-10, CIFAR-100, ImageNet (local folder).

Items are `(float32 image [C, H, W], int label)`; a model repeats a static image at each of its
T steps, so `T` is not used here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torchvision
from torchvision import transforms as tv

from .errors import CorruptFileError, DatasetNotFoundError, DownloadError

CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class FrameOptions:
    augment: bool | None = None  # None: on for train, off for test
    image_size: int | None = None  # ImageNet crop size (224 unless given)
    resize: int | None = None  # ImageNet test images: shorter side before the centre crop (image_size / 0.875)
    auto_augment: bool = False  # ImageNet training: RandomResizedCrop + AutoAugment, no flip (MS-ResNet's)


def _options(name: str, kwargs: dict) -> FrameOptions:
    known = {f.name for f in fields(FrameOptions)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {unknown}; accepted: {sorted(known)}")
    return FrameOptions(**kwargs)


def make_cifar(name: str, root, train: bool, T, download: bool, **kwargs):
    options = _options(name, kwargs)
    root = Path(root)
    cls, folder, url = {
        "cifar10": (torchvision.datasets.CIFAR10, "cifar-10-batches-py", torchvision.datasets.CIFAR10.url),
        "cifar100": (torchvision.datasets.CIFAR100, "cifar-100-python", torchvision.datasets.CIFAR100.url),
    }[name]
    if not (root / folder).is_dir() and not download:
        batches = "data_batch_1..5, test_batch, batches.meta" if name == "cifar10" else "train, test, meta"
        raise DatasetNotFoundError(
            name, root / folder, f"  <root>/{folder}/{{{batches}}}  (the python pickle version)",
            f"make_dataset('{name}', download=True), or fetch {url} by hand and unpack it in {root}",
        )
    mean, std = CIFAR_STATS[name]
    augment = train if options.augment is None else options.augment
    steps = [tv.RandomCrop(32, padding=4), tv.RandomHorizontalFlip()] if augment else []
    transform = tv.Compose([*steps, tv.ToTensor(), tv.Normalize(mean, std)])
    try:
        return cls(str(root), train=train, transform=transform, download=download)
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        raise CorruptFileError(root / folder, f"torchvision's checksum test failed ({error})") from error
    except OSError as error:  # urllib errors are OSErrors
        raise DownloadError(name, url, root, error) from error


def _checked_loader(path: str):
    try:
        return torchvision.datasets.folder.default_loader(path)
    except Exception as error:
        raise CorruptFileError(path, f"not a readable image ({type(error).__name__}: {error})") from error


def make_imagenet(name: str, root, train: bool, T, download: bool, **kwargs):
    options = _options(name, kwargs)
    folder = Path(root) / "imagenet" / ("train" if train else "val")
    layout = "  <root>/imagenet/train/<wnid, e.g. n01440764>/*.JPEG\n  <root>/imagenet/val/<wnid>/*.JPEG"
    how = (
        "ImageNet cannot be downloaded automatically (its licence needs a sign-in): get ILSVRC2012 "
        "from https://image-net.org/download.php and sort the validation images into wnid folders"
    )
    if not folder.is_dir() or next(folder.iterdir(), None) is None:
        raise DatasetNotFoundError(name, folder, layout, how)
    size = options.image_size or 224
    mean, std = IMAGENET_STATS
    augment = train if options.augment is None else options.augment
    if augment:
        steps = [tv.RandomResizedCrop(size), tv.AutoAugment() if options.auto_augment else tv.RandomHorizontalFlip()]
    else:
        steps = [tv.Resize(options.resize or round(size / 0.875)), tv.CenterCrop(size)]
    transform = tv.Compose([*steps, tv.ToTensor(), tv.Normalize(mean, std)])
    return torchvision.datasets.ImageFolder(str(folder), transform=transform, loader=_checked_loader)
