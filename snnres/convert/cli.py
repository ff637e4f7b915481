"""``snnres convert``: parse-free glue between the command line and ``write_converted``."""

from __future__ import annotations

import sys


def convert_command(source: str, layout: str, output: str, T: int | None, dataset: str | None,
                    dataset_kwargs: dict) -> int:
    from . import ConversionError, write_converted

    try:
        model, checkpoint = write_converted(source, layout, output, T=T, dataset=dataset,
                                            dataset_kwargs=dataset_kwargs)
    except ConversionError as error:
        print(f"snnres convert: {error}", file=sys.stderr)
        return 2
    args = checkpoint["model_args"]
    params = sum(p.numel() for p in model.parameters())
    extra = ", ".join(f"{k}={v}" for k, v in args["kwargs"].items())
    print(f"{source} ({layout}, {checkpoint['converted_from']['tensors']} tensors, all used) -> {output}: "
          f"{args['arch']} ({extra}), {params / 1e6:.2f}M parameters, {args['num_classes']} classes, "
          f"T={args['T']}, data set {checkpoint['config']['dataset']}")
    return 0
