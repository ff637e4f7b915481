"""The backward of a time-merged ``nn.Conv2d`` as pure functions, for the memory plans.

``conv2d_backward`` gives ``(dL/dx, dL/dweight, dL/dbias)`` from ``dL/dy`` and the input, like
autograd's ``convolution_backward``, with two shortcuts that give the same values to rounding:

- a 1x1 convolution with a stride scatters ``weight^T dL/dy`` into every ``stride``-th position
  (oneDNN's own backward converts the whole input to channels-last for it, ~5x slower on the CPU);
- an input repeated over time (a static image, direct encoding: ``x_seq`` an expanded view) gives
  the weight gradient of ``sum_t dL/dy[t]`` against one copy, a T-th of the work.

``repeated_conv`` computes such a conv once per image and repeats the result over T.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def is_repeated_over_time(x_seq: torch.Tensor) -> bool:
    """``x_seq [T, ...]`` is one tensor repeated T times (an expanded view, stride 0 in time)."""
    return x_seq.shape[0] > 1 and x_seq.stride(0) == 0


def _is_strided_1x1(conv: nn.Conv2d) -> bool:
    return (tuple(conv.kernel_size) == (1, 1) and tuple(conv.padding) == (0, 0) and conv.groups == 1
            and tuple(conv.dilation) == (1, 1) and tuple(conv.stride) != (1, 1))


def conv2d_backward(grad_y: torch.Tensor, x_seq: torch.Tensor, weight: torch.Tensor, conv: nn.Conv2d,
                    needs: tuple[bool, bool, bool]) -> tuple[torch.Tensor | None, ...]:
    """Gradients w.r.t. ``(x_seq, weight, bias)`` (None where ``needs`` is False) of
    ``y = conv(x_seq.flatten(0, 1))``; ``grad_y`` is ``[T*B, C_out, H', W']``, ``x_seq [T, B, ...]``
    in the dtype the conv ran in, ``weight`` too."""
    need_x, need_w, need_b = needs
    bias_sizes = [weight.shape[0]] if need_b else None
    grad_x = grad_w = grad_b = None
    args = (conv.stride, conv.padding, conv.dilation, False, [0, 0], conv.groups)
    if is_repeated_over_time(x_seq) and not need_x and (need_w or need_b):
        T = x_seq.shape[0]
        summed = grad_y.view(T, -1, *grad_y.shape[1:]).sum(0)  # the conv is linear: sum over t first
        _, grad_w, grad_b = torch.ops.aten.convolution_backward(summed, x_seq[0], weight, bias_sizes, *args,
                                                                 [False, need_w, need_b])
        return None, grad_w, grad_b
    x = x_seq.reshape(-1, *x_seq.shape[2:])
    if need_x and _is_strided_1x1(conv):
        grad_x = grad_y.new_zeros(x.shape)
        sh, sw = conv.stride
        grad_x[:, :, ::sh, ::sw] = F.conv2d(grad_y, weight.transpose(0, 1))
        need_x = False
    if need_x or need_w or need_b:
        gx, grad_w, grad_b = torch.ops.aten.convolution_backward(grad_y, x, weight, bias_sizes, *args,
                                                                  [need_x, need_w, need_b])
        grad_x = gx if need_x else grad_x
    return (None if grad_x is None else grad_x.view(x_seq.shape)), grad_w, grad_b


def repeated_conv(conv: nn.Conv2d, x_seq: torch.Tensor) -> torch.Tensor:
    """``conv(x_seq.flatten(0, 1))`` for an input repeated over time: one conv of the image,
    repeated T times (equal to the T-fold conv up to rounding; bit for bit on oneDNN)."""
    y = conv(x_seq[0])
    return y.unsqueeze(0).expand(x_seq.shape[0], *y.shape).reshape(-1, *y.shape[1:])
