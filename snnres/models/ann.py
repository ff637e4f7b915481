"""ANN baselines of matching depth: torchvision's ResNet class and timm's Vision Transformer.

They take the same inputs as the spiking models: ``[B, C, H, W]``, or ``[B, T, C, H, W]`` event
frames, run frame by frame with the logits averaged over time.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from ..layers import check_input
from .registry import cifar_blocks, register, register_family

IMAGENET = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
            104: (BasicBlock, (3, 8, 32, 8))}


class FrameAveraged(nn.Module):
    """An image network over ``[B, C, H, W]``, or over each frame of ``[B, T, C, H, W]`` (logits averaged)."""

    def __init__(self, net: nn.Module, in_channels: int):
        super().__init__()
        self.net, self.in_channels = net, in_channels

    def forward(self, x: torch.Tensor, time_first: bool | None = None) -> torch.Tensor:
        if time_first and x.ndim == 5:
            x = x.transpose(0, 1)
        weight = next(self.parameters(), None)
        check_input(x, self.in_channels, getattr(self, "T", None) if time_first is None else None,
                    weight.dtype if weight is not None else None)
        if x.ndim == 5:
            B, T = x.shape[:2]
            return self.net(x.flatten(0, 1)).view(B, T, -1).mean(1)
        return self.net(x)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet (6n+2, 16/32/64 channels) from torchvision's BasicBlock, projection shortcuts."""

    def __init__(self, blocks, num_classes: int, in_channels: int, widths=(16, 32, 64),
                 zero_init_residual: bool = False, first_stride: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        layers, channels = [], widths[0]
        for width, count, stride in zip(widths, blocks, (first_stride, 2, 2)):
            for i in range(count):
                s = stride if i == 0 else 1
                down = None
                if s != 1 or channels != width:
                    down = nn.Sequential(nn.Conv2d(channels, width, 1, s, bias=False), nn.BatchNorm2d(width))
                layers.append(BasicBlock(channels, width, s, down))
                channels = width
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():  # as torchvision's ResNet
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for block in self.stages:
                nn.init.zeros_(block.bn2.weight)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def _resnet_depth(depth: int) -> dict:
    return {"depth": depth}


@register_family("resnet", _resnet_depth, examples=(18, 20, 34, 50, 56, 104, 110))
def resnet(depth: int, num_classes: int = 1000, T: int = 1, in_channels: int = 3, zero_init_residual: bool = False,
           **kw) -> FrameAveraged:
    """18/34/50/104: torchvision's ImageNet ResNet (104 = BasicBlock x [3, 8, 32, 8], the layout of
    MS-ResNet-104); any other 6n+2 depth: He et al.'s CIFAR ResNet. ``T`` is unused: an ANN sees a
    static image once, and each frame of an event batch in turn (logits averaged over frames)."""
    if depth in IMAGENET:
        block, layers = IMAGENET[depth]
        net = ResNet(block, list(layers), num_classes=num_classes, zero_init_residual=zero_init_residual, **kw)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    else:
        net = CifarResNet(cifar_blocks(depth)["blocks"], num_classes, in_channels,
                          zero_init_residual=zero_init_residual, **kw)
    return FrameAveraged(net, in_channels)


def _vit(num_classes: int, in_channels: int, img_size: int, patch_size: int, embed_dim: int, depth: int,
         num_heads: int, **kw) -> FrameAveraged:
    from timm.models.vision_transformer import VisionTransformer

    sizes = img_size if isinstance(img_size, (tuple, list)) else (img_size, img_size)
    if any(s % patch_size for s in sizes):
        raise ValueError(f"a ViT cuts the image into patch_size x patch_size patches: img_size {img_size} is not "
                         f"divisible by patch_size {patch_size}; pick a patch size that divides it "
                         f"(e.g. --model-arg patch_size=4 for 16x16 or 32x32 images)")
    if depth < 1 or embed_dim % num_heads:
        raise ValueError(f"a ViT needs depth >= 1 and embed_dim divisible by num_heads; got depth {depth}, "
                         f"embed_dim {embed_dim}, num_heads {num_heads}")
    net = VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_channels, num_classes=num_classes,
                            embed_dim=embed_dim, depth=depth, num_heads=num_heads, **kw)
    return FrameAveraged(net, in_channels)


@register("vit-tiny")
def vit_tiny(num_classes: int = 1000, T: int = 1, in_channels: int = 3, img_size: int = 224, patch_size: int = 16,
             depth: int = 12, embed_dim: int = 192, num_heads: int = 3, **kw) -> FrameAveraged:
    """timm's ViT-Ti/16 (width 192, 3 heads); ``img_size`` must match the input (e.g. 32 on CIFAR)."""
    return _vit(num_classes, in_channels, img_size, patch_size, embed_dim, depth, num_heads, **kw)


@register("vit-small")
def vit_small(num_classes: int = 1000, T: int = 1, in_channels: int = 3, img_size: int = 224, patch_size: int = 16,
              depth: int = 12, embed_dim: int = 384, num_heads: int = 6, **kw) -> FrameAveraged:
    """timm's ViT-S/16 (width 384, 6 heads)."""
    return _vit(num_classes, in_channels, img_size, patch_size, embed_dim, depth, num_heads, **kw)


@register("vit-small-deep")
def vit_small_deep(num_classes: int = 1000, T: int = 1, in_channels: int = 3, img_size: int = 224,
                   patch_size: int = 16, depth: int = 54, embed_dim: int = 384, num_heads: int = 12,
                   **kw) -> FrameAveraged:
    """MIRL's ViT-S-54 (Huang et al. 2023): width 384, 12 heads (head width 32), ``depth`` blocks.

    ``depth``, ``embed_dim`` and ``num_heads`` are arguments, so the same deep-narrow layout runs at a
    CPU's scale, e.g. ``depth=24, embed_dim=96, num_heads=3`` keeps the 32-wide heads.
    """
    return _vit(num_classes, in_channels, img_size, patch_size, embed_dim, depth, num_heads, **kw)
