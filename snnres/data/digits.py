"""`digits`: scikit-learn's 8x8 handwritten digits (UCI optdigits test set, 1797 images, 10 classes).

The images ship inside the scikit-learn package, so this real image set needs no download: the
CPU-sized set for the ViT pre-training demonstration. A fixed permutation (seed 0) splits it into
1437 training and 360 test images. Pixels (0..16) are scaled to [0, 1] and standardised with the
training split's mean and standard deviation; `size` other than 8 resizes bilinearly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEST_IMAGES = 360
CLASSES = tuple(str(d) for d in range(10))


class Digits(torch.utils.data.Dataset):
    num_classes = 10
    classes = CLASSES

    def __init__(self, train: bool = True, size: int = 8):
        if size < 8:
            raise ValueError(f"digits: size must be at least the images' 8 pixels, got {size}")
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ImportError("the 'digits' data set is read from scikit-learn's package data: "
                              "pip install scikit-learn (or pip install -e '.[data]')") from None
        data = load_digits()
        images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0
        labels = torch.tensor(data.target, dtype=torch.long)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        split = order[:-TEST_IMAGES] if train else order[-TEST_IMAGES:]
        train_images = images[order[:-TEST_IMAGES]]
        mean, std = train_images.mean(), train_images.std()
        images = (images[split] - mean) / std
        if size != 8:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        self.images, self.labels = images.contiguous(), labels[split]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])


def make_digits(name, root, train, T, download, size: int = 8, **kwargs):
    if kwargs:
        raise TypeError(f"{name}: unknown option(s) {sorted(kwargs)}; accepted: ['size']")
    return Digits(train=train, size=size)
