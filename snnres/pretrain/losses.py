"""The two pre-training losses: MAE's masked reconstruction and MIRL's paired residual reconstruction."""

from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_l m_l mean_d (pred - target)^2 / sum_l m_l``: the mean squared error over hidden patches only.

    ``pred``, ``target``: ``[B, L, D]``; ``mask``: ``[B, L]``, 1 where the patch was hidden.
    """
    per_patch = (pred - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


def mae_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MAE: the one decoder after the last block reconstructs the hidden patches."""
    return masked_mse(pred, target, mask)


def mirl_pairs(segments: int) -> list[tuple[int, int]]:
    """The (shallow, deep) segment pairs of MIRL: ``(k, K-1-k)`` for ``k < K/2``, segments numbered from 0.

    With 6 segments: (0, 5), (1, 4), (2, 3): the shallowest decoder is completed by the deepest.
    """
    if segments < 2 or segments % 2:
        raise ValueError(f"MIRL pairs shallow with deep segments, so it needs an even number of segments >= 2, "
                         f"got {segments}")
    return [(k, segments - 1 - k) for k in range(segments // 2)]


def mirl_loss(preds: list[torch.Tensor], target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MIRL: ``L = (2/K) sum_{k<K/2} masked_mse(pred_k + pred_{K-1-k}, target)``.

    ``preds[k]`` is the decoder output of segment ``k`` (``[B, L, D]``). The shallow segment's decoder
    reconstructs the main component of the hidden patches and the paired deep one the residual
    ``target - pred_k`` it leaves. Returns the loss and the ``K/2`` pair losses.
    """
    pairs = mirl_pairs(len(preds))
    terms = torch.stack([masked_mse(preds[s] + preds[d], target, mask) for s, d in pairs])
    return terms.mean(), terms
