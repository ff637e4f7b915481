"""snnres: deep residual spiking neural networks with fused neuron kernels."""

__version__ = "0.1.0"
