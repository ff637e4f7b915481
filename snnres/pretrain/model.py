"""Masked image modelling around a registered ``vit-*`` model: MAE and MIRL.

MAE (He et al. 2022): the encoder sees only the visible 25% of the patches; one light decoder
after the last block predicts the hidden patches' normalised pixels.

MIRL (Huang et al., NeurIPS 2023): the encoder's blocks are cut into ``K`` equal segments; the
output of each goes through its own LayerNorm (the last segment's is the encoder's final norm) to
its own decoder. Decoder ``k`` and decoder ``K-1-k`` are summed before the loss
(:func:`snnres.pretrain.losses.mirl_loss`), so the deep segments learn the residual of the masked
image that the shallow ones leave. As in the authors' code, each MIRL decoder also cross-attends to
the shallower segments' visible tokens and to the patch embeddings.

The authors' configs also weight-normalise the prediction layer with the gain fixed at 1
(``pred_weight_norm=True``). That is off by default here: a pair's loss only sees the sum of its
two predictions, so nothing shrinks a component that one adds and the other cancels, and with the
gain fixed (weight decay cannot reach it) the decoders keep the initial output variance,
``decoder width / pixels per patch`` each: 0.5 at ViT-S-54's 384 -> 768, 6 at 96 -> 16 (4x4 grey
patches), where each trained decoder's prediction was measured at an RMS of 1.3-2.2 (the target's:
0.96), cancelling in the pair's sum.

The encoder is the classifier itself (a ``FrameAveraged`` timm ``VisionTransformer``): its
weights are what fine-tuning starts from. During pre-training its position embedding is the fixed
2-D sin-cos one (as MAE) and its classification head is unused and frozen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .decoder import PixelDecoder, sincos_positions
from .losses import mae_loss, mirl_loss, mirl_pairs
from .masking import patch_targets, random_masking

METHODS = ("mae", "mirl")


@dataclass(frozen=True)
class MaskedModelingOptions:
    """How to pre-train; ``None`` picks the method's default (in brackets)."""

    method: str = "mirl"
    mask_ratio: float = 0.75
    segments: int | None = None           # MIRL [the largest of 6, 4, 2 that divides the depth]
    decoder_dim: int | None = None        # [the encoder's width]
    decoder_depth: int | None = None      # blocks per decoder [MIRL 1 (ViT-S-54's), MAE 2]
    decoder_heads: int | None = None      # [the encoder's heads]
    cross_attention: bool | None = None   # decoders attend to shallower segments [MIRL on, MAE off]
    pred_weight_norm: bool = False        # the authors' MIRL configs: on (see the module docstring)
    norm_pix_loss: bool = True            # per-patch normalised target

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown pre-training method {self.method!r}: expected one of {', '.join(METHODS)}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie strictly between 0 and 1 (MAE and MIRL use 0.75), "
                             f"got {self.mask_ratio}")
        if self.method == "mae" and self.segments not in (None, 1):
            raise ValueError("MAE has one decoder after the last block: segments is a MIRL option")

    def to_dict(self) -> dict:
        return asdict(self)


def default_segments(depth: int) -> int:
    """The largest of 6 (the authors' ViT-S-54 and ViT-B-48 use 6), 4 and 2 that divides ``depth``."""
    for k in (6, 4, 2):
        if depth % k == 0:
            return k
    raise ValueError(f"MIRL cuts the encoder into an even number of equal segments, and depth {depth} has no even "
                     f"divisor among 6, 4, 2: give segments=K with depth % K == 0, or use an even depth")


VIT_HINT = "use vit-tiny, vit-small or vit-small-deep (depth, embed_dim and num_heads are model arguments)"


def check_vit_arch(arch: str) -> None:
    """Refuse a non-ViT architecture by name, before anything is built or written."""
    from ..models import list_models

    if arch not in list_models() or not arch.startswith("vit-"):
        kind = "is not a registered model" if arch not in list_models() else "is not a ViT"
        raise ValueError(f"masked image pre-training needs a ViT, and {arch} {kind}: {VIT_HINT}")


def vit_of(encoder: nn.Module, arch: str = "the model"):
    """The timm ``VisionTransformer`` inside a registered ``vit-*`` model, or a clear error."""
    from timm.models.vision_transformer import VisionTransformer

    net = getattr(encoder, "net", None)
    if not isinstance(net, VisionTransformer):
        raise ValueError(f"masked image pre-training needs a ViT, and {arch} is a {type(encoder).__name__}: "
                         f"{VIT_HINT}")
    if net.cls_token is None or net.reg_token is not None or net.no_embed_class or net.pos_embed is None:
        raise ValueError(f"{arch}: pre-training supports the standard ViT layout (one class token, position "
                         f"embedding over it, no register tokens)")
    return net


@dataclass
class PretrainOutput:
    loss: torch.Tensor                       # what is minimised
    terms: torch.Tensor                      # MAE: [1]; MIRL: one loss per (shallow, deep) pair
    preds: list[torch.Tensor] = field(repr=False)  # per decoder, [B, L, p*p*C]
    mask: torch.Tensor = field(repr=False)   # [B, L], 1 = hidden
    target: torch.Tensor = field(repr=False)  # [B, L, p*p*C]


class MaskedImageModel(nn.Module):
    """``model(images) -> PretrainOutput``; ``images``: ``[B, C, H, W]`` or event frames ``[B, T, C, H, W]``
    (each frame is one image)."""

    def __init__(self, encoder: nn.Module, options: MaskedModelingOptions, arch: str = "the model"):
        super().__init__()
        vit = vit_of(encoder, arch)
        self.encoder, self.options = encoder, options
        mirl = options.method == "mirl"
        depth, width = len(vit.blocks), vit.embed_dim
        heads = vit.blocks[0].attn.num_heads
        self.patch_size = vit.patch_embed.patch_size[0]
        self.grid = tuple(vit.patch_embed.grid_size)
        self.in_channels = vit.patch_embed.proj.in_channels
        segments = (options.segments or default_segments(depth)) if mirl else 1
        if mirl:
            mirl_pairs(segments)
            if depth % segments:
                raise ValueError(f"MIRL cuts the encoder into equal segments: depth {depth} is not divisible by "
                                 f"segments={segments}")
        self.segment_ends = [depth * (k + 1) // segments for k in range(segments)]
        cross = mirl if options.cross_attention is None else options.cross_attention
        dim = options.decoder_dim or width
        decoder_depth = options.decoder_depth or (1 if mirl else 2)
        pixels = self.patch_size ** 2 * self.in_channels
        # the last segment ends in the encoder's own final norm (kept for fine-tuning), unless the
        # encoder has none there (timm moves it after the pooling with global_pool="avg")
        own_last = isinstance(vit.norm, nn.Identity)
        self.segment_norms = nn.ModuleList(nn.LayerNorm(width, eps=1e-6) for _ in range(segments - 1 + own_last))
        self.decoders = nn.ModuleList(
            PixelDecoder(width, dim, decoder_depth, options.decoder_heads or heads, self.grid, pixels,
                         cross_attention=cross, pred_weight_norm=options.pred_weight_norm) for _ in range(segments))
        self.patch_context = nn.Sequential(nn.LayerNorm(width, eps=1e-6), nn.Linear(width, dim)) if cross else None
        with torch.no_grad():
            vit.pos_embed.copy_(sincos_positions(self.grid, width))
        vit.pos_embed.requires_grad_(False)
        vit.head.requires_grad_(False)

    @property
    def vit(self):
        return self.encoder.net

    @property
    def segments(self) -> int:
        return len(self.segment_ends)

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim == 5:
            images = images.flatten(0, 1)
        size = (self.grid[0] * self.patch_size, self.grid[1] * self.patch_size)
        if images.ndim != 4 or images.shape[1] != self.in_channels or tuple(images.shape[2:]) != size:
            raise ValueError(f"expected images [B, {self.in_channels}, {size[0]}, {size[1]}] (or frames "
                             f"[B, T, {self.in_channels}, {size[0]}, {size[1]}]), got {list(images.shape)}; "
                             f"set the model's img_size to the data's size")
        return images

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> PretrainOutput:
        images = self._check(images)
        vit = self.vit
        x = vit.patch_embed(images) + vit.pos_embed[:, 1:]
        B, L, D = x.shape
        masking = random_masking(B, L, self.options.mask_ratio, generator, x.device)
        x = x.gather(1, masking.keep[..., None].expand(-1, -1, D))
        x = torch.cat([(vit.cls_token + vit.pos_embed[:, :1]).expand(B, -1, -1), x], dim=1)
        x = vit.norm_pre(x)
        contexts = [self.patch_context(x)] if self.patch_context is not None else []
        outputs = []
        for i, block in enumerate(vit.blocks):
            x = block(x)
            if i + 1 in self.segment_ends:
                k = len(outputs)
                outputs.append(self.segment_norms[k](x) if k < len(self.segment_norms) else vit.norm(x))
        preds = []
        for decoder, tokens in zip(self.decoders, outputs):
            context = torch.cat(contexts, dim=1) if contexts else None
            pred, embedded = decoder(tokens, masking.restore, context)
            preds.append(pred)
            if contexts:
                contexts.append(embedded)
        target = patch_targets(images, self.patch_size, normalize=self.options.norm_pix_loss)
        if self.options.method == "mae":
            loss = mae_loss(preds[0], target, masking.mask)
            terms = loss.detach()[None]
        else:
            loss, terms = mirl_loss(preds, target, masking.mask)
            terms = terms.detach()
        return PretrainOutput(loss, terms, preds, masking.mask, target)

    def term_names(self) -> list[str]:
        """Names of ``PretrainOutput.terms``, 1-based segments: ``mae`` or ``seg1+seg6``, ..."""
        if self.options.method == "mae":
            return ["mae"]
        return [f"seg{s + 1}+seg{d + 1}" for s, d in mirl_pairs(self.segments)]
