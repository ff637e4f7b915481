"""Parameter counts against the papers' and libraries' published numbers.

Sources: MS-ResNet counts from the authors' code (Ariande1/MS-ResNet, models/MS_ResNet.py: 18/34
with 1x1-conv shortcuts and a projection in stage 1; 104 with the three-conv stem) as collected in
shared/REFERENCES.md (11.69M / 21.80M / 77.35M; CIFAR 20: 0.27M, 56: 0.86M, 110: 1.73M, 482:
7.76M); DS-ResNet from Feng et al. (IJCAI 2022) Table/ code langfengQ/MLF-DSResNet (ResNet-20
64/128/256: 4.33M; 16/32/64: 0.27M; ResNet-14 32/64/128: 0.70M); SEW-ResNet and the ANN baselines
equal torchvision's ResNet-18/34/50 (11.69M / 21.80M / 25.56M, torchvision model docs).
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
])
def test_parameter_count(name, kwargs, expected):
    assert round(millions(create_model(name, **kwargs)), 2) == expected


def test_plain_network_has_no_shortcut_parameters():
    # The plain spiking ResNet is SEW's layout minus the projection shortcuts.
    sew, plain = create_model("sew-resnet20"), create_model("spiking-resnet20")
    assert millions(plain) < millions(sew)
    assert all(block.shortcut is None for block in plain.blocks())
