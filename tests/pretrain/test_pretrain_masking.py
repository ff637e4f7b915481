"""Masking and the per-patch normalised target, against hand-worked cases and plain loops."""

import pytest
import torch

from snnres.pretrain import patch_targets, patchify, random_masking


def test_mask_hides_exactly_the_ratio_and_keep_lists_the_visible_patches():
    m = random_masking(batch=5, num_patches=16, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
    assert m.mask.shape == (5, 16) and m.keep.shape == (5, 4)
    assert (m.mask.sum(1) == 12).all()  # int(16 * 0.25) = 4 visible, as MAE
    for b in range(5):
        visible = set(torch.nonzero(m.mask[b] == 0).flatten().tolist())
        assert set(m.keep[b].tolist()) == visible
        # restore undoes the shuffle: [visible..., hidden...] gathered by restore is the patch order
        order = torch.cat([m.keep[b], torch.tensor(sorted(set(range(16)) - visible))])
        assert torch.equal(torch.sort(order).values, torch.arange(16))


def test_rounding_follows_mae():
    m = random_masking(3, 10, 0.75, torch.Generator().manual_seed(1))
    assert m.keep.shape == (3, 2) and (m.mask.sum(1) == 8).all()  # int(10 * 0.25) = 2


def test_masks_differ_between_samples_and_repeat_with_the_seed():
    a = random_masking(64, 16, 0.75, torch.Generator().manual_seed(7))
    b = random_masking(64, 16, 0.75, torch.Generator().manual_seed(7))
    c = random_masking(64, 16, 0.75, torch.Generator().manual_seed(8))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.keep, b.keep)
    assert not torch.equal(a.mask, c.mask)
    distinct = {tuple(row.tolist()) for row in a.mask}
    assert len(distinct) > 50  # C(16, 4) = 1820 masks: 64 independent draws rarely repeat
    # every patch is hidden with probability 0.75
    freq = torch.cat([random_masking(256, 16, 0.75, torch.Generator().manual_seed(s)).mask for s in range(4)]).mean(0)
    assert ((freq - 0.75).abs() < 0.06).all()


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_ratio_outside_open_interval_is_refused(ratio):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        random_masking(2, 16, ratio)


def test_ratio_that_keeps_nothing_is_refused():
    with pytest.raises(ValueError, match="keeps 0 visible"):
        random_masking(2, 4, 0.9)


def test_patchify_order_is_row_major_pixels_then_channels():
    images = torch.arange(2 * 2 * 4 * 6, dtype=torch.float32).reshape(2, 2, 4, 6)
    p = 2
    out = patchify(images, p)
    assert out.shape == (2, 6, 8)
    for b in range(2):
        for i in range(2):
            for j in range(3):
                expected = [images[b, c, i * p + u, j * p + v].item() for u in range(p) for v in range(p) for c in range(2)]
                assert out[b, i * 3 + j].tolist() == expected


def test_patchify_matches_timm_token_order():
    # timm's PatchEmbed token l is the patch at grid row l // W', column l % W'.
    from timm.layers import PatchEmbed

    embed = PatchEmbed(img_size=8, patch_size=4, in_chans=1, embed_dim=16, bias=False)
    with torch.no_grad():  # an identity projection: the token is the patch's pixels in (u, v) order
        embed.proj.weight.copy_(torch.eye(16).view(16, 1, 4, 4))
    images = torch.randn(3, 1, 8, 8)
    assert torch.allclose(embed(images), patchify(images, 4))


def test_per_patch_normalised_target_hand_worked():
    # one 1-channel 2x4 image, two 2x2 patches: [0, 1, 4, 5] and [2, 3, 6, 7] in (u, v) order
    image = torch.tensor([[[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]]])
    target = patch_targets(image, 2, eps=0.0)
    # mean 2.5 and 4.5; unbiased variance ((2.5^2 + 1.5^2) * 2) / 3 = 17/3 for both
    std = (17 / 3) ** 0.5
    expected = torch.tensor([[[-2.5, -1.5, 1.5, 2.5], [-2.5, -1.5, 1.5, 2.5]]]) / std
    assert torch.allclose(target, expected)
    raw = patch_targets(image, 2, normalize=False)
    assert raw[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]
    # eps keeps a flat patch finite: (x - mean) = 0
    flat = patch_targets(torch.ones(1, 1, 2, 2), 2)
    assert torch.equal(flat, torch.zeros(1, 1, 4))


def test_patch_size_must_divide_the_image():
    with pytest.raises(ValueError, match="cannot be cut into 3x3 patches"):
        patchify(torch.zeros(1, 1, 8, 8), 3)
