"""Inputs a model cannot read are refused with the layout or dtype it takes and how to convert."""

import pytest
import torch

from snnres.models import create_model


@pytest.fixture(scope="module")
def model():
    return create_model("ms-resnet-cifar8", num_classes=10, T=4, in_channels=2).eval()


def test_time_first_frames_are_refused_and_accepted_with_time_first(model):
    batch_first = torch.rand(2, 4, 2, 16, 16)          # [B=2, T=4, C, H, W]
    time_first = batch_first.transpose(0, 1).contiguous()  # [T=4, B=2, C, H, W]: read as B=4, T=2 before
    with pytest.raises(ValueError, match=r"\(4, 2, 2, 16, 16\).*T=4.*time-first.*\[B, T, C, H, W\].*transpose"):
        model(time_first)
    with torch.no_grad():
        assert torch.equal(model(time_first, time_first=True), model(batch_first))
        assert model(batch_first).shape == (2, 10)
        assert model(torch.rand(3, 6, 2, 16, 16)).shape == (3, 10)  # other frame counts stay allowed
        assert model(torch.rand(4, 6, 2, 16, 16), time_first=False).shape == (4, 10)  # B = T: said how


@pytest.mark.parametrize("dtype, convert", [(torch.float64, r"x\.float\(\)"), (torch.float16, r"x\.float\(\)")])
def test_input_of_another_dtype_names_both_and_the_conversion(model, dtype, convert):
    x = torch.rand(2, 2, 16, 16, dtype=dtype)
    with pytest.raises(ValueError, match=rf"input is {dtype}.*weights are torch.float32.*{convert}"):
        model(x)
    with torch.no_grad():
        assert model(x.float()).shape == (2, 10)


def test_a_double_model_takes_double_input():
    model = create_model("spiking-cnn", num_classes=5, T=2, in_channels=2).double().eval()
    with torch.no_grad():
        assert model(torch.rand(1, 2, 2, 8, 8, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match=r"weights are torch.float64.*x\.double\(\)"):
        model(torch.rand(1, 2, 8, 8))
