"""The resumable order: batches are a function of (seed, epoch, position), whatever came before."""

import torch

from snnres.data import make_dataset
from snnres.train.sampler import ResumableSampler, SeededSamples


def _items(sampler, epoch, skip=0):
    sampler.set_epoch(epoch, skip)
    return list(sampler)


def test_skip_continues_the_same_order_and_seeds():
    sampler = ResumableSampler(list(range(20)), seed=3)
    full = _items(sampler, 1)
    assert _items(sampler, 1, skip=7) == full[7:] and len(sampler) == 13
    assert sorted(i for i, _ in full) == list(range(20))
    assert len({s for _, s in full}) == 20 and full != _items(sampler, 2)


def test_two_processes_see_together_what_one_sees():
    one = dict(_items(ResumableSampler(list(range(16)), 1, 0, seed=5), 0))
    ranks = [_items(ResumableSampler(list(range(16)), 2, r, seed=5), 0) for r in (0, 1)]
    assert dict(ranks[0] + ranks[1]) == one


def test_augmentation_is_drawn_from_the_sample_seed_not_the_global_stream():
    data = SeededSamples(make_dataset("synthetic-dvs", num_samples=8, size=16, T=2, augment=True))
    torch.manual_seed(0)
    a = data[(3, 1234)][0]
    torch.rand(100)  # the global stream moves on
    before = torch.get_rng_state()
    b = data[(3, 1234)][0]
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), before)  # and it is left as it was
    assert torch.equal(data[(3, 2**62 + 5)][0], data[(3, 2**62 + 5)][0])  # 63-bit seeds
    assert any(not torch.equal(a, data[(3, seed)][0]) for seed in range(1, 6))  # other seeds, other draws
