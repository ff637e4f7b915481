"""`digits`: scikit-learn's images, split without overlap, standardised with the training split's statistics."""

import pytest
import torch

from snnres.data import make_dataset

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def test_digits_are_sklearns_images_split_80_20():
    reference = sklearn_datasets.load_digits()
    train, test = make_dataset("digits"), make_dataset("digits", train=False)
    assert (len(train), len(test)) == (1437, 360) and train.num_classes == 10
    image, label = train[0]
    assert image.shape == (1, 8, 8) and isinstance(label, int)
    # The pixels are an affine map of sklearn's 17 grey levels 0..16: recover it from the levels.
    levels = torch.unique(torch.cat([train.images.flatten(), test.images.flatten()]))
    assert len(levels) == 17
    step = levels[1] - levels[0]
    grey = ((torch.cat([train.images, test.images]) - levels[0]) / step).round().flatten(1)
    ours = torch.unique(torch.cat([grey, torch.cat([train.labels, test.labels])[:, None].float()], 1), dim=0,
                        return_counts=True)
    raw = torch.tensor(reference.images, dtype=torch.float32).flatten(1)
    theirs = torch.unique(torch.cat([raw, torch.tensor(reference.target)[:, None].float()], 1), dim=0,
                          return_counts=True)
    # the same (image, label) pairs, each as often as in sklearn's set: no image lost or doubled
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    # standardised with the training split's statistics
    assert abs(float(train.images.mean())) < 1e-5 and abs(float(train.images.std()) - 1) < 1e-4
    assert abs(float(test.images.mean())) > 1e-4  # not the test split's own


def test_digits_resize_and_options():
    assert make_dataset("digits", size=16)[0][0].shape == (1, 16, 16)
    with pytest.raises(TypeError, match="unknown option"):
        make_dataset("digits", augment=True)
