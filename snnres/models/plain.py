"""The plain spiking ResNet (``spiking-resnet{N}``): SEW-ResNet's layouts with every shortcut removed.

Each block is ``SN(BN(conv(SN(BN(conv(S))))))`` alone (a ``SpikeElementWiseBlock`` with
``connect=None``), so the network is a deep plain SNN: the baseline of the degradation study
(Fang et al. 2021; Hu et al., MS-ResNet) against which the residual variants are compared.
18/34/50 take the ImageNet layout, any other 6n+2 depth the CIFAR one (16/32/64 channels).
"""

from __future__ import annotations

from .registry import register_family
from .sew_resnet import sew_depth, sew_style_resnet


@register_family("spiking-resnet", sew_depth, examples=(8, 18, 20, 32, 34, 50, 56, 110))
def spiking_resnet(**kw):
    """The plain spiking ResNet; ``neuron`` if (default), plif, ms, mlf or a callable."""
    if kw.pop("connect", None) is not None:
        raise ValueError("spiking-resnet has no shortcuts, so no connect function; use sew-resnet{N} for one")
    return sew_style_resnet(connect=None, **kw)
