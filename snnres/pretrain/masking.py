"""Random patch masking and the per-patch normalised pixel target (MAE, He et al. 2022).

Patches are numbered row by row over the patch grid, the order of timm's ``PatchEmbed`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Masking:
    """One draw of per-sample random masks over ``L`` patches.

    ``keep``: ``[B, n_keep]`` indices of the visible patches (the encoder sees only these);
    ``mask``: ``[B, L]``, 1.0 where a patch is hidden, 0.0 where visible;
    ``restore``: ``[B, L]``, the permutation that puts ``[visible..., hidden...]`` back in patch order.
    """

    keep: torch.Tensor
    mask: torch.Tensor
    restore: torch.Tensor


def kept_patches(num_patches: int, mask_ratio: float) -> int:
    """``int(L * (1 - ratio))`` visible patches, as MAE; at least one patch visible and one hidden."""
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must lie strictly between 0 and 1 (MAE and MIRL use 0.75), got {mask_ratio}")
    keep = int(num_patches * (1 - mask_ratio))
    if keep < 1 or keep >= num_patches:
        raise ValueError(f"mask_ratio {mask_ratio} over {num_patches} patches keeps {keep} visible: it must keep at "
                         f"least one and hide at least one; use more patches (a smaller patch_size) or another ratio")
    return keep


def random_masking(batch: int, num_patches: int, mask_ratio: float, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> Masking:
    """Hide ``L - int(L (1 - ratio))`` patches of each sample, chosen uniformly and independently per sample.

    As MAE: per-sample uniform noise, argsort; the lowest ``n_keep`` stay visible. The noise is drawn
    from ``generator`` on the CPU, so one seed gives the same masks on any device.
    """
    n_keep = kept_patches(num_patches, mask_ratio)
    noise = torch.rand(batch, num_patches, generator=generator)
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    mask = torch.ones(batch, num_patches)
    mask[:, :n_keep] = 0.0
    mask = mask.gather(1, restore)
    return Masking(shuffle[:, :n_keep].to(device), mask.to(device), restore.to(device))


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, H, W] -> [B, L, p*p*C]``: patch ``l = i * (W/p) + j`` holds pixels ``(i p + u, j p + v)`` in
    ``(u, v, c)`` order (MAE's layout)."""
    B, C, H, W = images.shape
    p = patch_size
    if H % p or W % p:
        raise ValueError(f"images of {H}x{W} pixels cannot be cut into {p}x{p} patches: pick a patch size that "
                         f"divides both sides")
    x = images.reshape(B, C, H // p, p, W // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // p) * (W // p), p * p * C)


def patch_targets(images: torch.Tensor, patch_size: int, normalize: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """The reconstruction target per patch: ``(x - mean(x)) / sqrt(var(x) + eps)`` over each patch's pixels.

    ``var`` is the unbiased variance (MAE's ``norm_pix_loss``, kept by MIRL); ``normalize=False``
    gives the raw pixels.
    """
    target = patchify(images, patch_size)
    if not normalize:
        return target
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps).sqrt()
