"""The authors' released checkpoints as snnres checkpoints: ``snnres convert --from LAYOUT CKPT -o out.pt``."""

from .convert import convert_checkpoint, read_foreign, write_converted
from .official import LAYOUTS, ConversionError

__all__ = ["LAYOUTS", "ConversionError", "convert_checkpoint", "read_foreign", "write_converted"]
