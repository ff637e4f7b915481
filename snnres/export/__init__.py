"""Export to the Neuromorphic Intermediate Representation (NIR) and load NIR graphs back.

``to_nir(model, input_shape, dt=1e-4) -> nir.NIRGraph`` and ``from_nir(graph) -> nn.Module``;
``nir`` and ``nirtorch`` are dependencies of snnres.
"""

from .errors import ExportError


def to_nir(model, input_shape, dt: float = 1e-4, **kwargs):
    """An snnres model as a ``nir.NIRGraph`` (see ``snnres.export.nir.to_nir``)."""
    return _nir().to_nir(model, input_shape, dt, **kwargs)


def from_nir(graph, **kwargs):
    """A NIR graph (or a path to a ``.nir`` file) as an snnres module (see ``snnres.export.load``)."""
    return _load().from_nir(graph, **kwargs)


def _nir():
    try:
        from . import nir as module
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(f"NIR export needs the nir package ({error}); pip install nir nirtorch (dependencies of snnres)") from None
    return module


def _load():
    try:
        from . import load as module
    except ImportError as error:  # pragma: no cover
        raise ImportError(f"NIR import needs the nir package ({error}); pip install nir nirtorch (dependencies of snnres)") from None
    return module


__all__ = ["ExportError", "from_nir", "to_nir"]
