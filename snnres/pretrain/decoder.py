"""The light pixel decoders of MAE and MIRL, built from timm's ViT blocks.

A decoder embeds the visible encoder tokens into its own width, fills the hidden positions with a
learnt mask token, adds fixed 2-D sin-cos positions, runs a few blocks and predicts every patch's
pixels. MIRL's decoders (as in the authors' code) also cross-attend to the visible tokens of the
shallower segments and to the patch embeddings (``context``).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


def sincos_positions(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """``[1, 1 + L, dim]``: timm's 2-D sin-cos embedding of the patch grid, a zero row for the class token."""
    from timm.layers import build_sincos2d_pos_embed

    patches = build_sincos2d_pos_embed(list(grid), dim)
    return torch.cat([torch.zeros(1, dim), patches], dim=0)[None]


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``x`` over keys and values ``context`` (softmax(q k^T / sqrt(d)) v)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"decoder width {dim} is not divisible by its {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        h = self.num_heads
        q = self.q(x).view(B, N, h, C // h).transpose(1, 2)
        k, v = self.kv(context).view(B, context.shape[1], 2, h, C // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class CrossBlock(nn.Module):
    """Pre-norm block: ``x += SelfAttn(LN x)``, ``x += CrossAttn(LN x, LN context)``, ``x += MLP(LN x)``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        from timm.layers import Attention, Mlp

        self.norm1, self.norm2, self.norm_context, self.norm3 = (nn.LayerNorm(dim, eps=1e-6) for _ in range(4))
        self.attn = Attention(dim, num_heads, qkv_bias=True)
        self.cross = CrossAttention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.cross(self.norm2(x), self.norm_context(context))
        return x + self.mlp(self.norm3(x))


class PixelDecoder(nn.Module):
    """Visible tokens ``[B, 1 + n_keep, enc_dim]`` (class token first) -> pixels of every patch ``[B, L, p*p*C]``.

    ``pred_weight_norm``: the authors' MIRL configs fix the prediction layer's weight norm to 1 per
    input feature (weight normalisation with the gain frozen at 1).
    """

    def __init__(self, enc_dim: int, dim: int, depth: int, num_heads: int, grid: tuple[int, int], pixels: int,
                 cross_attention: bool = False, pred_weight_norm: bool = False, mlp_ratio: float = 4.0):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.cross_attention = cross_attention
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("positions", sincos_positions(grid, dim), persistent=False)
        if cross_attention:
            self.blocks = nn.ModuleList(CrossBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        else:
            self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias=True,
                                              norm_layer=partial(nn.LayerNorm, eps=1e-6)) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, pixels)
        self.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)
        if pred_weight_norm:
            nn.utils.parametrizations.weight_norm(self.pred, dim=1)
            gain = self.pred.parametrizations.weight.original0
            gain.data.fill_(1.0)
            gain.requires_grad_(False)

    def forward(self, tokens: torch.Tensor, restore: torch.Tensor,
                context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the per-patch prediction and the embedded visible tokens (the next decoders' context)."""
        embedded = self.embed(tokens)
        B, L = restore.shape
        hidden = self.mask_token.expand(B, L + 1 - embedded.shape[1], -1)
        patches = torch.cat([embedded[:, 1:], hidden], dim=1)
        patches = patches.gather(1, restore[..., None].expand(-1, -1, patches.shape[-1]))
        x = torch.cat([embedded[:, :1], patches], dim=1) + self.positions
        for block in self.blocks:
            x = block(x, context) if self.cross_attention else block(x)
        return self.pred(self.norm(x))[:, 1:], embedded


def _init_weights(module: nn.Module) -> None:
    """MAE's initialisation: Xavier-uniform linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
