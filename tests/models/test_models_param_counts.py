"""Parameter counts against the papers' and libraries' published numbers.

Sources: MS-ResNet counts from the authors' code (Ariande1/MS-ResNet, models/MS_ResNet.py: 18/34
with 1x1-conv shortcuts and a projection in stage 1; 104 with the three-conv stem) as collected in
shared/REFERENCES.md (11.69M / 21.80M / 77.35M; CIFAR 20: 0.27M, 56: 0.86M, 110: 1.73M, 482:
7.76M); DS-ResNet from Feng et al. (IJCAI 2022) Table/ code langfengQ/MLF-DSResNet (ResNet-20
64/128/256: 4.33M; 16/32/64: 0.27M; ResNet-14 32/64/128: 0.70M); SEW-ResNet and the ANN baselines
equal torchvision's ResNet-18/34/50 (11.69M / 21.80M / 25.56M, torchvision model docs); the CIFAR
ResNets He et al. 2016 (Table 6: 20: 0.27M, 32: 0.46M, 44: 0.66M, 56: 0.85M, 110: 1.7M, there with
parameter-free shortcuts; ours have 1x1 projections, +0.01M at 32 and 56); the ViTs timm's model cards
(vit_tiny_patch16_224 5.72M, vit_small_patch16_224 22.05M) and MIRL's ViT-S-54 (about 97M).
"""

import pytest

from snnres.models import create_model


def millions(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize("name,kwargs,expected", [
    ("ms-resnet18", dict(num_classes=1000), 11.69),
    ("ms-resnet34", dict(num_classes=1000), 21.80),
    ("ms-resnet104", dict(num_classes=1000), 77.35),
    ("ms-resnet-cifar20", dict(num_classes=10), 0.27),
    ("ms-resnet-cifar56", dict(num_classes=10), 0.86),
    ("ms-resnet-cifar110", dict(num_classes=10), 1.73),
    ("ms-resnet-cifar482", dict(num_classes=10), 7.76),
    ("ds-resnet20", dict(num_classes=10), 4.33),
    ("ds-resnet20", dict(num_classes=11, widths=(16, 32, 64)), 0.27),
    ("ds-resnet14", dict(num_classes=10, widths=(32, 64, 128)), 0.70),
    ("sew-resnet18", dict(num_classes=1000), 11.69),
    ("sew-resnet34", dict(num_classes=1000), 21.80),
    ("sew-resnet50", dict(num_classes=1000), 25.56),
    ("resnet18", dict(num_classes=1000), 11.69),
    ("resnet34", dict(num_classes=1000), 21.80),
    ("resnet50", dict(num_classes=1000), 25.56),
    ("resnet20", dict(num_classes=10), 0.27),
    ("resnet32", dict(num_classes=10), 0.47),
    ("resnet44", dict(num_classes=10), 0.66),
    ("resnet110", dict(num_classes=10), 1.73),
    ("vit-tiny", dict(num_classes=1000), 5.72),
    ("vit-small", dict(num_classes=1000), 22.05),
    ("vit-small-deep", dict(num_classes=1000), 96.58),
])
def test_parameter_count(name, kwargs, expected):
    assert round(millions(create_model(name, **kwargs)), 2) == expected


def test_plain_network_has_no_shortcut_parameters():
    # The plain spiking ResNet is SEW's layout minus the projection shortcuts.
    sew, plain = create_model("sew-resnet20"), create_model("spiking-resnet20")
    assert millions(plain) < millions(sew)
    assert all(block.shortcut is None for block in plain.blocks())


def test_resnet104_baseline_differs_from_ms_resnet104_by_the_stem_only():
    # Same [3, 8, 32, 8] BasicBlock layout; MS-ResNet-104's stem is three 3x3 convs with bias
    # (3*64*9+64 + 2*(64*64*9+64)) where torchvision's is one 7x7 conv (3*64*49) + max-pool, and
    # MS-ResNet's first stage strides by 2 instead, so it has one more projection (64*64 + BN 2*64).
    ann = sum(p.numel() for p in create_model("resnet104", num_classes=1000).parameters())
    ms = sum(p.numel() for p in create_model("ms-resnet104", num_classes=1000).parameters())
    assert ms - ann == (3 * 64 * 9 + 64 + 2 * (64 * 64 * 9 + 64)) - 3 * 64 * 49 + 64 * 64 + 2 * 64


@pytest.mark.parametrize("depth", [14, 20, 32, 44, 56, 68])
def test_ds_resnet_depths_share_the_cifar_resnet_layout(depth):
    # With 16/32/64 channels a DS-ResNet has exactly the parameters of the ANN CIFAR ResNet of the
    # same depth (tdBN adds none): one block type, one layout, any 6n+2 depth.
    ds = create_model(f"ds-resnet{depth}", widths=(16, 32, 64))
    assert millions(ds) == millions(create_model(f"resnet{depth}"))
