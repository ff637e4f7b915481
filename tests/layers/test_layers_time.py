"""Time-merged layers and input encoding: shapes, BN statistics over (T, B, H, W), errors for people."""

import pytest
import torch
from torch import nn

from snnres.layers import SeqToANN, check_input, encode_input, seq_bn, seq_conv


def test_seq_to_ann_equals_a_loop_over_time():
    torch.manual_seed(0)
    conv = seq_conv(3, 5, 3, stride=2)
    x = torch.randn(4, 2, 3, 9, 9)
    y = conv(x)
    assert y.shape == (4, 2, 5, 5, 5)
    for t in range(4):
        torch.testing.assert_close(y[t], conv.module(x[t]))


def test_seq_to_ann_chains_several_modules():
    layer = SeqToANN(nn.AvgPool2d(2), nn.Flatten())
    assert layer(torch.ones(3, 2, 4, 8, 8)).shape == (3, 2, 4 * 4 * 4)


def test_seq_bn_statistics_span_time_batch_and_space():
    # tdBN (Zheng et al. 2021) normalises each channel over T, B, H and W together: a channel
    # whose mean drifts over time keeps that drift after BN (a per-step BN would remove it).
    bn = seq_bn(2, weight_init=0.5)
    assert torch.equal(bn.module.weight, torch.full((2,), 0.5))
    x = torch.randn(3, 4, 2, 5, 5) + torch.arange(3.0).view(3, 1, 1, 1, 1)
    y = bn(x)
    per_channel = y.transpose(0, 2).reshape(2, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1, unbiased=False), torch.full((2,), 0.5), atol=1e-3, rtol=0)
    step_means = y.mean(dim=(1, 2, 3, 4))
    assert step_means[0] < step_means[1] < step_means[2]


def test_encode_static_images_repeats_over_T():
    x = torch.rand(2, 3, 4, 4)
    seq = encode_input(x, T=5, in_channels=3)
    assert seq.shape == (5, 2, 3, 4, 4)
    assert all(torch.equal(seq[t], x) for t in range(5))


def test_encode_event_frames_goes_time_first_and_keeps_their_T():
    x = torch.rand(2, 7, 2, 4, 4)  # [B, T, C, H, W] as Tonic's PadTensors(batch_first=True)
    seq = encode_input(x, T=3, in_channels=2)
    assert seq.shape == (7, 2, 2, 4, 4)
    assert torch.equal(seq[4, 1], x[1, 4])


@pytest.mark.parametrize("x,match", [
    (torch.rand(2, 5, 8, 8), r"\[B, 3, H, W\] images or \[B, T, 3, H, W\] event frames, got \(2, 5, 8, 8\)"),
    (torch.rand(2, 4, 5, 8, 8), r"got \(2, 4, 5, 8, 8\): 5 channels, but the model was built with in_channels=3"),
    (torch.rand(3, 8, 8), r"got a 3-d tensor of shape \(3, 8, 8\)"),
    (torch.rand(1, 1, 1, 3, 8, 8), r"6-d"),
    (torch.ones(1, 3, 8, 8, dtype=torch.uint8), r"floating point.*torch.uint8.*\.float\(\)"),
])
def test_wrong_rank_channels_or_dtype_raise_value_error(x, match):
    with pytest.raises(ValueError, match=match):
        encode_input(x, T=2, in_channels=3)


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_input([[1.0]], 3)
