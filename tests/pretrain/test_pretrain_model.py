"""MAE and MIRL on the registered ViTs: the losses by hand, gradients, masking seen by the encoder, errors."""

import pytest
import torch

from snnres.models import create_model
from snnres.pretrain import MaskedImageModel, MaskedModelingOptions, mae_loss, mirl_loss, mirl_pairs

TINY = dict(num_classes=10, in_channels=1, img_size=8, patch_size=2, embed_dim=32, num_heads=2)


def tiny(method: str, depth: int = 4, **options) -> MaskedImageModel:
    torch.manual_seed(0)
    return MaskedImageModel(create_model("vit-small-deep", depth=depth, **TINY),
                            MaskedModelingOptions(method=method, **options))


def test_mirl_loss_two_segments_hand_worked():
    # 1 sample, 3 patches of 2 pixels; patch 1 visible (mask 0), patches 0 and 2 hidden.
    shallow = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [2.0, 2.0]]])
    deep = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]])
    target = torch.tensor([[[1.0, 1.0], [5.0, 5.0], [1.0, 3.0]]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    # shallow + deep: [1, 1] (exact), [1, 1] (visible: ignored), [2, 2] vs [1, 3]: errors 1, -1 -> 1
    loss, terms = mirl_loss([shallow, deep], target, mask)
    assert terms.tolist() == [0.5] and loss.item() == 0.5  # (0 + 1) / 2 hidden patches
    # MAE on the shallow prediction alone: ([0, 1] -> 0.5) and ([1, -1] -> 1) over 2 hidden patches
    assert mae_loss(shallow, target, mask).item() == 0.75


def test_mirl_loss_four_segments_pairs_outer_with_inner():
    assert mirl_pairs(4) == [(0, 3), (1, 2)] and mirl_pairs(6) == [(0, 5), (1, 4), (2, 3)]
    target = torch.zeros(1, 2, 1)
    mask = torch.ones(1, 2)
    preds = [torch.full((1, 2, 1), v) for v in (1.0, 2.0, -2.0, -1.0)]
    loss, terms = mirl_loss(preds, target, mask)
    assert terms.tolist() == [0.0, 0.0] and loss.item() == 0.0  # 1 + (-1), 2 + (-2)
    preds = [torch.full((1, 2, 1), v) for v in (1.0, 2.0, 0.0, 0.0)]
    loss, terms = mirl_loss(preds, target, mask)
    assert terms.tolist() == [1.0, 4.0] and loss.item() == 2.5
    with pytest.raises(ValueError, match="even number of segments"):
        mirl_loss(preds[:3], target, mask)


@pytest.mark.parametrize("segments", [2, 4])
def test_mirl_gradients_reach_every_segment_and_pair_decoders_share_them(segments):
    model = tiny("mirl", depth=4, segments=segments)
    out = model(torch.rand(4, 1, 8, 8), torch.Generator().manual_seed(0))
    for pred in out.preds:
        pred.retain_grad()
    out.loss.backward()
    blocks_per_segment = 4 // segments
    for i, block in enumerate(model.vit.blocks):
        grad = block.attn.qkv.weight.grad
        assert grad is not None and grad.abs().sum() > 0, f"block {i} (segment {i // blocks_per_segment + 1})"
    for k, decoder in enumerate(model.decoders):
        assert decoder.embed.weight.grad.abs().sum() > 0, f"decoder {k + 1}"
    for norm in model.segment_norms:
        assert norm.weight.grad.abs().sum() > 0
    # the loss sees only pred_s + pred_d: both get the same gradient, the paired residual error
    for s, d in mirl_pairs(segments):
        assert torch.allclose(out.preds[s].grad, out.preds[d].grad)
        residual = (out.preds[s] + out.preds[d] - out.target).detach() * out.mask[..., None]
        expected = 2 * residual / (out.mask.sum() * out.target.shape[-1]) / (segments // 2)
        assert torch.allclose(out.preds[s].grad, expected, atol=1e-7)


def test_mae_has_one_decoder_after_the_last_block():
    model = tiny("mae", depth=4)
    assert model.segments == 1 and len(model.decoders) == 1 and model.term_names() == ["mae"]
    out = model(torch.rand(4, 1, 8, 8), torch.Generator().manual_seed(0))
    assert torch.allclose(out.loss, mae_loss(out.preds[0], out.target, out.mask))
    out.loss.backward()
    assert all(b.mlp.fc2.weight.grad.abs().sum() > 0 for b in model.vit.blocks)
    assert model.vit.head.weight.grad is None and not model.vit.pos_embed.requires_grad


@pytest.mark.parametrize("method", ["mae", "mirl"])
def test_predictions_depend_only_on_the_visible_patches(method):
    model = tiny(method).eval()
    images = torch.rand(2, 1, 8, 8)
    first = model(images, torch.Generator().manual_seed(3))
    hidden = first.mask.view(2, 4, 4).repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None].bool()
    changed = torch.where(hidden, torch.rand_like(images), images)
    second = model(changed, torch.Generator().manual_seed(3))
    assert torch.equal(first.mask, second.mask)
    for a, b in zip(first.preds, second.preds):
        assert torch.allclose(a, b, atol=1e-6)
    shown = torch.where(hidden, images, torch.rand_like(images))  # change a visible pixel instead
    assert not torch.allclose(model(shown, torch.Generator().manual_seed(3)).preds[-1], first.preds[-1])


def test_segments_follow_the_depth():
    assert tiny("mirl", depth=12).segment_ends == [2, 4, 6, 8, 10, 12]
    assert tiny("mirl", depth=8).segment_ends == [2, 4, 6, 8]
    assert tiny("mirl", depth=8, segments=2).segment_ends == [4, 8]
    with pytest.raises(ValueError, match="not divisible by segments=4"):
        tiny("mirl", depth=6, segments=4)
    with pytest.raises(ValueError, match="even number of segments"):
        tiny("mirl", depth=3, segments=3)


def test_event_frames_are_images():
    model = tiny("mirl")
    out = model(torch.rand(2, 3, 1, 8, 8))  # [B, T, C, H, W]: 6 images
    assert out.mask.shape == (6, 16)


def test_clear_errors():
    with pytest.raises(ValueError, match="needs a ViT, and resnet18 is"):
        MaskedImageModel(create_model("resnet18"), MaskedModelingOptions(), arch="resnet18")
    with pytest.raises(ValueError, match="img_size 30 is not divisible by patch_size 4"):
        create_model("vit-tiny", img_size=30, patch_size=4)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        MaskedModelingOptions(mask_ratio=1.0)
    with pytest.raises(ValueError, match="unknown pre-training method 'bert'"):
        MaskedModelingOptions(method="bert")
    with pytest.raises(ValueError, match=r"expected images \[B, 1, 8, 8\]"):
        tiny("mae")(torch.rand(2, 1, 16, 16))


def test_pred_weight_norm_fixes_each_input_features_weights_to_unit_norm():
    model = tiny("mirl", pred_weight_norm=True)
    out = model(torch.rand(2, 1, 8, 8))
    out.loss.backward()
    pred = model.decoders[0].pred
    # the authors' Paddle weight_norm(dim=0) on a [in, out] weight: one unit-norm vector per input feature
    assert torch.allclose(pred.weight.norm(dim=0), torch.ones(pred.in_features), atol=1e-6)
    gain = pred.parametrizations.weight.original0
    assert not gain.requires_grad and pred.parametrizations.weight.original1.grad.abs().sum() > 0
    assert not hasattr(tiny("mirl").decoders[0].pred, "parametrizations")  # off by default
