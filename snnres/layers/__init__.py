"""Building blocks shared by the architectures: time-merged layers, tdBN and input encoding."""

from .memory_plan import MEMORY_MODES, SpikingSequential, check_memory, conv_norm_neuron, set_memory, spike_count_bound
from .norm import ThresholdScaledBatchNorm2d
from .time import SeqToANN, check_input, encode_input, seq_bn, seq_conv, seq_tdbn

__all__ = ["MEMORY_MODES", "SeqToANN", "SpikingSequential", "ThresholdScaledBatchNorm2d", "check_input",
           "check_memory", "conv_norm_neuron", "encode_input", "seq_bn", "seq_conv", "seq_tdbn", "set_memory",
           "spike_count_bound"]
