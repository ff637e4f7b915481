"""Building blocks shared by the architectures: time-merged layers and input encoding."""

from .time import SeqToANN, encode_input, seq_bn, seq_conv

__all__ = ["SeqToANN", "encode_input", "seq_bn", "seq_conv"]
