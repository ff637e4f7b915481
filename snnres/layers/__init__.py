"""Building blocks shared by the architectures: time-merged layers, tdBN and input encoding."""

from .memory_plan import MEMORY_MODES, SpikingSequential, check_memory, conv_norm_neuron, set_memory, spike_count_bound
from .norm import EPS_PLACEMENTS, SCALE_PARAMS, ThresholdScaledBatchNorm2d, eval_scale_shift, sync_batchnorm
from .time import SeqToANN, check_input, encode_input, seq_bn, seq_conv, seq_tdbn

__all__ = ["EPS_PLACEMENTS", "MEMORY_MODES", "SCALE_PARAMS", "SeqToANN", "SpikingSequential",
           "ThresholdScaledBatchNorm2d", "check_input", "check_memory", "conv_norm_neuron", "encode_input",
           "eval_scale_shift", "seq_bn", "seq_conv", "seq_tdbn", "set_memory", "spike_count_bound", "sync_batchnorm"]
