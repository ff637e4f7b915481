"""Building blocks shared by the architectures: time-merged layers, tdBN and input encoding."""

from .norm import EPS_PLACEMENTS, SCALE_PARAMS, ThresholdScaledBatchNorm2d, eval_scale_shift, sync_batchnorm
from .time import SeqToANN, check_input, encode_input, seq_bn, seq_conv, seq_tdbn

__all__ = ["EPS_PLACEMENTS", "SCALE_PARAMS", "SeqToANN", "ThresholdScaledBatchNorm2d", "check_input", "encode_input",
           "eval_scale_shift", "seq_bn", "seq_conv", "seq_tdbn", "sync_batchnorm"]
