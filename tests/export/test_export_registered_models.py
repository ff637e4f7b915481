"""The registered architectures themselves (not test replicas) through the NIRTorch round trip."""

import pytest
import torch

from snnres.models import create_model

from test_export_nir import round_trip


@pytest.mark.parametrize("name,kwargs", [
    ("ms-resnet-cifar8", {}),
    ("ds-resnet8", {"widths": (4, 8, 8)}),
    ("ds-resnet8", {"widths": (4, 8, 8), "input_norm": True}),  # tdBN(affine=False) on the input: x alpha*V_th
    ("spiking-cnn", {"widths": (4, 8)}),
    ("spiking-resnet8", {"widths": (4, 8, 8)}),  # IF neurons: nir.IF
    ("sew-resnet8", {"widths": (4, 8, 8)}),
])
def test_registered_model_round_trip(tmp_path, name, kwargs):
    def make():
        model = create_model(name, num_classes=5, T=3, in_channels=2, backend="torch", **kwargs)
        for m in model.modules():  # make every residual branch active (MS-ResNet zero-inits its last BN)
            if isinstance(m, torch.nn.BatchNorm2d) and m.affine:
                torch.nn.init.constant_(m.weight, 1.0)
        return model.eval()
    round_trip(make, (2, 8, 8), tmp_path)
