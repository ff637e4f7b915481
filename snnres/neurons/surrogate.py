"""Surrogate gradients: Heaviside forward, a smooth or box-shaped derivative backward.

Every surrogate is parametrised by ``alpha`` as in SpikingJelly: ``alpha`` is the steepness (the
peak of the derivative) and every derivative integrates to 1. With ``x = h - v_threshold``:

=============  ====================================================  ==========================
name           derivative ``g'(x)``                                   SpikingJelly equivalent
=============  ====================================================  ==========================
``sigmoid``    ``alpha * sig(alpha x) * (1 - sig(alpha x))``           ``surrogate.Sigmoid``
``atan``       ``(alpha / 2) / (1 + (pi/2 * alpha * x)^2)``            ``surrogate.ATan``
``triangle``   ``max(0, alpha - alpha^2 |x|)``                         ``surrogate.PiecewiseQuadratic``
``rectangle``  ``alpha`` where ``|x| < 0.5 / alpha``, else 0           ``surrogate.Rect``
=============  ====================================================  ==========================

``rectangle`` with ``alpha = 1`` is the MS-ResNet / MLF box: height 1 on ``|h - V_th| < 0.5``.
The MLF paper's box of width ``a`` and height ``1/a`` is ``rectangle`` with ``alpha = 1/a``.
"""

from __future__ import annotations

import difflib
import math

import torch

#: Surrogate names and the integer id the fused kernels switch on (kernels/lif.cu, numba backend).
SURROGATE_IDS: dict[str, int] = {"sigmoid": 0, "atan": 1, "triangle": 2, "rectangle": 3}


def surrogate_id(name: str) -> int:
    """The kernel id of a surrogate name; a clear error for an unknown one."""
    try:
        return SURROGATE_IDS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), SURROGATE_IDS, n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown surrogate {name!r}: expected one of {sorted(SURROGATE_IDS)}.{hint}"
        ) from None


def surrogate_grad(x: torch.Tensor, name: str, alpha: float) -> torch.Tensor:
    """The surrogate derivative ``g'(x)`` (see the module docstring), in the dtype of ``x``."""
    sid = surrogate_id(name)
    if sid == 0:
        s = torch.sigmoid(alpha * x)
        return (1 - s) * s * alpha
    if sid == 1:
        z = x * (math.pi / 2 * alpha)
        return (alpha / 2) / (1 + z * z)
    if sid == 2:
        return (alpha - alpha * alpha * x.abs()).clamp_min(0)
    return (x.abs() < 0.5 / alpha).to(x.dtype) * alpha


class SpikeFunction(torch.autograd.Function):
    """``S = (x >= 0)`` (or ``x > 0`` when ``strict``) forward, ``dS/dx = g'(x)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, name: str, alpha: float, strict: bool = False) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.name, ctx.alpha = name, alpha
        return ((x > 0) if strict else (x >= 0)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_spike: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_spike * surrogate_grad(x, ctx.name, ctx.alpha), None, None, None


def spike(x: torch.Tensor, name: str = "sigmoid", alpha: float = 4.0, fire: str = "ge") -> torch.Tensor:
    """Heaviside step with the named surrogate derivative: fires on ``x >= 0`` (``fire="ge"``) or
    ``x > 0`` (``"gt"``). With ``x = H - V_th`` in floating point, ``x > 0`` exactly when ``H > V_th``
    (a difference of two floats is zero only when they are equal), so either test is exact."""
    return SpikeFunction.apply(x, name, alpha, fire == "gt")
