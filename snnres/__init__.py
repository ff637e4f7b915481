"""snnres: deep residual spiking neural networks with fused neuron kernels."""

__version__ = "0.1.0"


def load_checkpoint(path):
    """Rebuild a model from an snnres checkpoint: ``(model, info)`` (see ``snnres.train.checkpoint``)."""
    from .train.checkpoint import load_checkpoint as _load

    return _load(path)


__all__ = ["__version__", "load_checkpoint"]
