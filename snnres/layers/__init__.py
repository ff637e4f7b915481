"""Building blocks shared by the architectures: time-merged layers, tdBN and input encoding."""

from .norm import ThresholdScaledBatchNorm2d
from .time import SeqToANN, check_input, encode_input, seq_bn, seq_conv, seq_tdbn

__all__ = ["SeqToANN", "ThresholdScaledBatchNorm2d", "check_input", "encode_input", "seq_bn", "seq_conv", "seq_tdbn"]
