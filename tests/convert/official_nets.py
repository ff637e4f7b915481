"""Test-only rebuilds of the authors' networks: their module names (so ``state_dict()`` has their
checkpoints' keys and layouts) and their forward semantics, written from the papers' code
descriptions for these tests (Ariande1/MS-ResNet ``models/MS_ResNet.py``, langfengQ/MLF-DSResNet
``parallel_nets/``, fangwei123456/Spike-Element-Wise-ResNet ``imagenet/sew_resnet.py``).

What the oracles compute, per the authors' code:
- MS-ResNet: ``mem = 0.25 * mem_old * (1 - spike) + x``, ``spike = mem > 0.5`` (rectangle
  surrogate, reset detached); tdBN is a BatchNorm3d over ``[B, C, T, H, W]``; the head averages
  the last neuron's spikes over space, then time, then applies the FC (dropout before it in 104).
- DS-ResNet: time merged into the batch (``[T*B, ...]``, step-major); MLF levels
  ``u_k = 0.25 * u_k * (1 - (u_k > th_k)) + x`` with the reset in the graph; tdBN
  ``alpha * Vth * (x - mean) / (sqrt(var) + eps) * lambda + beta``; head: pool, FC, mean over T.
- SEW-ResNet: SpikingJelly's multi-step IF neuron (``v += x``, spike on ``v >= 1``, detached hard
  reset, ATan surrogate); the stem's conv and BN run once on the image before it is repeated.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Rect(torch.autograd.Function):
    """``x > th`` forward, ``1 / width`` on ``|x - th| < width / 2`` backward."""

    @staticmethod
    def forward(ctx, x, th, width):
        ctx.save_for_backward(x)
        ctx.th, ctx.width = th, width
        return x.gt(th).float()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ((x - ctx.th).abs() < ctx.width / 2).float() / ctx.width, None, None


class ATanHeaviside(torch.autograd.Function):
    """SpikingJelly's ``heaviside(x) = x >= 0`` with the ATan surrogate (alpha = 2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (2 / 2) / (1 + (math.pi / 2 * 2 * x) ** 2)


# ---------------------------------------------------------------- MS-ResNet (Ariande1/MS-ResNet)

class MemUpdate(nn.Module):
    def forward(self, x):
        out, mem, spike = torch.zeros_like(x), None, None
        for t in range(x.shape[0]):
            mem = x[t] if t == 0 else mem * 0.25 * (1 - spike.detach()) + x[t]
            spike = Rect.apply(mem, 0.5, 1.0)
            out[t] = spike
        return out


class SnnConv(nn.Conv2d):
    def forward(self, x):
        return torch.stack([super(SnnConv, self).forward(x[t]) for t in range(x.shape[0])])


class TimeBN3d(nn.Module):
    """``batch_norm_2d``: ``self.bn`` is a BatchNorm3d over [B, C, T, H, W]."""

    def __init__(self, channels, weight):
        super().__init__()
        self.bn = nn.BatchNorm3d(channels)
        nn.init.constant_(self.bn.weight, weight)

    def forward(self, x):
        return self.bn(x.permute(1, 2, 0, 3, 4)).permute(2, 0, 1, 3, 4)


class MSBlock(nn.Module):
    def __init__(self, c_in, c_out, stride, avgpool_shortcut):
        super().__init__()
        self.residual_function = nn.Sequential(
            MemUpdate(), SnnConv(c_in, c_out, 3, stride, 1, bias=False), TimeBN3d(c_out, 0.5),
            MemUpdate(), SnnConv(c_out, c_out, 3, 1, 1, bias=False), TimeBN3d(c_out, 0.0))
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            if avgpool_shortcut:
                self.shortcut = nn.Sequential(nn.AvgPool3d((1, 2, 2), (1, 2, 2)),
                                              SnnConv(c_in, c_out, 1, 1, bias=False), TimeBN3d(c_out, 0.5))
            else:
                self.shortcut = nn.Sequential(SnnConv(c_in, c_out, 1, stride, bias=False), TimeBN3d(c_out, 0.5))

    def forward(self, x):  # AvgPool3d((1, 2, 2)) on [T, B, C, H, W] pools H and W
        return self.residual_function(x) + self.shortcut(x)


class MSResNet(nn.Module):
    def __init__(self, blocks, depth104=False, num_classes=1000, T=6):
        super().__init__()
        self.T = T
        if depth104:
            self.conv1 = nn.Sequential(SnnConv(3, 64, 3, 2, 1), SnnConv(64, 64, 3, 1, 1), SnnConv(64, 64, 3, 1, 1),
                                       TimeBN3d(64, 0.5))
        else:
            self.conv1 = nn.Sequential(SnnConv(3, 64, 7, 2, 3, bias=False), TimeBN3d(64, 0.5))
        self.pool = nn.MaxPool2d(3, 2, 1)  # defined by the authors, never used
        self.mem_update = MemUpdate()
        c = 64
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            layers = []
            for j in range(n):
                layers.append(MSBlock(c, width, 2 if j == 0 else 1, depth104))
                c = width
            setattr(self, f"conv{i + 2}_x", nn.Sequential(*layers))
        self.fc = nn.Linear(512, num_classes)
        self.dropout = nn.Dropout(0.2) if depth104 else None

    def forward(self, x):
        out = self.conv1(x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1))
        for i in range(2, 6):
            out = getattr(self, f"conv{i}_x")(out)
        out = self.mem_update(out)
        out = out.mean((3, 4))  # adaptive_avg_pool3d to (T, 1, 1), flattened
        out = out.sum(0) / out.shape[0]
        if self.dropout is not None:
            out = self.dropout(out)
        return self.fc(out)


def ms_resnet(depth: int, **kw) -> MSResNet:
    return MSResNet({18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 104: (3, 8, 32, 8)}[depth], depth == 104, **kw)


# ---------------------------------------------------------------- DS-ResNet (langfengQ/MLF-DSResNet)

class MLFUnit(nn.Module):
    def __init__(self, T):
        super().__init__()
        self.T = T

    def forward(self, x):
        bs = x.shape[0] // self.T
        u = [torch.zeros_like(x[:bs]) for _ in range(3)]
        o = torch.zeros_like(x)
        for t in range(self.T):
            xt = x[t * bs:(t + 1) * bs]
            total = 0
            for k, th in enumerate((0.6, 1.6, 2.6)):
                u[k] = 0.25 * u[k] * (1 - Rect.apply(u[k], th, 1.0)) + xt
                total = total + Rect.apply(u[k], th, 1.0)
            o[t * bs:(t + 1) * bs] = total
        return o


class TdBN(nn.Module):
    def __init__(self, channels, affine=True):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=affine)

    def forward(self, x):
        bn, f = self.bn, 0.0
        if self.training:
            bn.num_batches_tracked += 1
            f = bn.momentum
            mean = x.mean([0, 2, 3], keepdim=True)
            var = x.var([0, 2, 3], keepdim=True, unbiased=False)
            n = x.numel() / x.size(1)
            with torch.no_grad():
                bn.running_mean = f * mean[0, :, 0, 0] + (1 - f) * bn.running_mean
                bn.running_var = f * var[0, :, 0, 0] * n / (n - 1) + (1 - f) * bn.running_var
        else:
            mean, var = bn.running_mean[None, :, None, None], bn.running_var[None, :, None, None]
        x = 1 * 0.6 * (x - mean) / (torch.sqrt(var) + bn.eps)
        if bn.affine:
            x = x * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
        return x


class DSBlock(nn.Module):
    def __init__(self, c_in, c_out, stride, T):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = TdBN(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = TdBN(c_out)
        self.spike_func = MLFUnit(T)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), TdBN(c_out), MLFUnit(T))

    def forward(self, x):
        out = self.spike_func(self.bn1(self.conv1(x)))
        return self.spike_func(self.bn2(self.conv2(out))) + self.shortcut(x)


class BlockLayer(nn.Module):
    def __init__(self, c_in, c_out, n, downsample, T):
        super().__init__()
        self.execute = nn.Sequential(*[DSBlock(c_in if i == 0 else c_out, c_out, 2 if downsample and i == 0 else 1, T)
                                       for i in range(n)])

    def forward(self, x):
        return self.execute(x)


class DSResNet(nn.Module):
    """``widths`` (64, 128, 256) CIFAR-10, (16, 32, 64) DVS-Gesture (``input_norm``), (32, 64, 128) CIFAR10-DVS."""

    def __init__(self, blocks, widths=(64, 128, 256), in_channels=3, num_classes=10, T=4, input_norm=False):
        super().__init__()
        self.T = T
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        if input_norm:
            self.bn0 = TdBN(in_channels, affine=False)
        self.bn1 = TdBN(widths[0])
        c = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            setattr(self, f"layer{i + 1}", BlockLayer(c, w, n, i > 0, T))
            c = w
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.voting = nn.Linear(widths[2], num_classes)
        self.spike_func = MLFUnit(T)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        """``x``: ``[B, C, H, W]`` (repeated T times) or ``[B, T, C, H, W]``, as the snnres models take."""
        x = x.unsqueeze(1).expand(-1, self.T, *x.shape[1:]) if x.ndim == 4 else x
        x = x.transpose(0, 1).reshape(-1, *x.shape[2:])  # the authors' step-major [T*B, ...]
        if hasattr(self, "bn0"):
            x = self.bn0(x)
        out = self.spike_func(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = self.voting(self.avg_pool(out).flatten(1))
        bs = out.shape[0] // self.T
        o = torch.zeros_like(out[:bs])
        for t in range(self.T):
            o += out[t * bs:(t + 1) * bs]
        return o / self.T


# ---------------------------------------------------------------- SEW-ResNet (fangwei123456/Spike-Element-Wise-ResNet)

class SeqToANNContainer(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        self.module = modules[0] if len(modules) == 1 else nn.Sequential(*modules)

    def forward(self, x):
        y = self.module(x.flatten(0, 1))
        return y.view(x.shape[0], x.shape[1], *y.shape[1:])


class MultiStepIFNode(nn.Module):
    def forward(self, x):
        v, out = torch.zeros_like(x[0]), []
        for t in range(x.shape[0]):
            v = v + x[t]
            spike = ATanHeaviside.apply(v - 1.0)
            v = v * (1 - spike.detach())
            out.append(spike)
        return torch.stack(out)


class SEWBasic(nn.Module):
    expansion = 1

    def __init__(self, c_in, planes, stride, downsample, connect):
        super().__init__()
        self.conv1 = SeqToANNContainer(nn.Conv2d(c_in, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes))
        self.sn1 = MultiStepIFNode()
        self.conv2 = SeqToANNContainer(nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes))
        self.sn2 = MultiStepIFNode()
        self.downsample, self.connect = downsample, connect

    def branch(self, x):
        return self.sn2(self.conv2(self.sn1(self.conv1(x))))

    def forward(self, x):
        out = self.branch(x)
        identity = x if self.downsample is None else self.downsample(x)
        return {"ADD": lambda: out + identity, "AND": lambda: out * identity,
                "IAND": lambda: identity * (1.0 - out)}[self.connect]()


class SEWBottleneck(SEWBasic):
    expansion = 4

    def __init__(self, c_in, planes, stride, downsample, connect):
        nn.Module.__init__(self)
        self.conv1 = SeqToANNContainer(nn.Conv2d(c_in, planes, 1, bias=False), nn.BatchNorm2d(planes))
        self.sn1 = MultiStepIFNode()
        self.conv2 = SeqToANNContainer(nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes))
        self.sn2 = MultiStepIFNode()
        self.conv3 = SeqToANNContainer(nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4))
        self.sn3 = MultiStepIFNode()
        self.downsample, self.connect = downsample, connect

    def branch(self, x):
        return self.sn3(self.conv3(self.sn2(self.conv2(self.sn1(self.conv1(x))))))


class SEWResNet(nn.Module):
    def __init__(self, depth, num_classes=1000, T=4, connect="ADD"):
        super().__init__()
        block, layers = {18: (SEWBasic, (2, 2, 2, 2)), 34: (SEWBasic, (3, 4, 6, 3)),
                         50: (SEWBottleneck, (3, 4, 6, 3))}[depth]
        self.T = T
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.sn1 = MultiStepIFNode()
        self.maxpool = SeqToANNContainer(nn.MaxPool2d(3, 2, 1))
        c = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                down = None
                if j == 0 and (stride != 1 or c != planes * block.expansion):
                    down = nn.Sequential(SeqToANNContainer(nn.Conv2d(c, planes * block.expansion, 1, stride, bias=False),
                                                           nn.BatchNorm2d(planes * block.expansion)), MultiStepIFNode())
                blocks.append(block(c, planes, stride, down, connect))
                c = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = SeqToANNContainer(nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.bn1(self.conv1(x)).unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x = self.maxpool(self.sn1(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 2).mean(0))


def randomise_bn_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters (a trained network's, not the initial ones)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.25)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model
