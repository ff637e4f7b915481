"""Read an authors' checkpoint, map every tensor onto the snnres model, write an snnres checkpoint.

``convert_checkpoint(path, layout)`` loads the file with ``weights_only=True`` (argparse's
``Namespace``, which SEW's training script saves, is the one extra type allowed), strips the
``module.`` prefixes of DataParallel / DDP, reads the architecture off the keys (``official.py``),
renames every key, and checks the result against the snnres model: every source tensor used, once;
every model tensor filled (a missing ``num_batches_tracked`` is the only gap allowed: PyTorch
before 0.4.1 did not save it); every shape equal. The model is then built, loaded strictly and
returned with the checkpoint that ``eval``, ``energy-report``, ``simulate`` and ``export`` read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from ..models import create_model
from ..train.checkpoint import MODEL_ARGS_FORMAT, save_checkpoint
from .official import LAYOUTS, ConversionError, Target


def read_foreign(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state dict without module. prefixes, the file's other entries)`` of a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"no checkpoint at {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConversionError(f"{path} cannot be read as a PyTorch checkpoint with weights_only=True "
                              f"({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None
    extras: dict[str, Any] = {}
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):  # {"model": state_dict, "epoch": ...}
        extras = {k: v for k, v in obj.items() if k != "model"}
        obj = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        extras = {k: v for k, v in obj.items() if k != "state_dict"}
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{path} holds no state dict (a mapping of names to tensors, alone or under 'model')")
    state = {}
    for key, value in obj.items():
        while key.startswith("module."):
            key = key[len("module."):]
        state[key] = value
    return state, extras


def map_state(state: dict[str, torch.Tensor], target: Target, model: torch.nn.Module, layout: str) -> dict:
    """The snnres state dict from ``state`` renamed by ``target``; ``ConversionError`` listing every
    unused, doubly used, missing or mis-shaped tensor."""
    wanted = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unused, twice, shapes = [], [], []
    for key, value in state.items():
        new = target.rename(key)
        if new is None or new not in wanted:
            unused.append(key)
        elif new in mapped:
            twice.append(f"{key} -> {new}")
        elif tuple(value.shape) != tuple(wanted[new].shape):
            shapes.append(f"{key} {tuple(value.shape)} -> {new} {tuple(wanted[new].shape)}")
        else:
            mapped[new] = value.to(wanted[new].dtype) if value.is_floating_point() else value
    missing = [k for k in wanted if k not in mapped and not k.endswith("num_batches_tracked")]
    problems = [(unused, "tensors of the checkpoint have no place in the model"),
                (twice, "tensors map onto a tensor already filled"),
                (missing, "tensors of the model get no value"),
                (shapes, "tensors have another shape than the model's")]
    found = [f"{len(items)} {what} (e.g. {', '.join(items[:3])})" for items, what in problems if items]
    if found:
        raise ConversionError(f"{layout} -> {target.arch}: " + "; ".join(found)
                              + ". The checkpoint is not of this layout, or of another depth or width")
    for key in wanted:  # saved by PyTorch >= 0.4.1; older files go without
        mapped.setdefault(key, wanted[key])
    return mapped


IMAGE_SIZES = {"imagenet": 224, "cifar10": 32, "cifar100": 32}  # the input of an image data set (event sets: read)


def data_record(config: dict, in_channels: int) -> dict:
    """What ``snnres train`` records about the input (``train.trained``), for image data sets."""
    size = int(config["dataset_kwargs"].get("image_size") or IMAGE_SIZES[config["dataset"]])
    return {"dataset": config["dataset"], "input_shape": [in_channels, size, size], "in_channels": in_channels,
            "sensor_size": None}


def convert_checkpoint(path: str | Path, layout: str, T: int | None = None, dataset: str | None = None,
                       dataset_kwargs: dict | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(model, snnres checkpoint)`` from an authors' checkpoint of ``layout`` (``LAYOUTS``).

    ``T`` defaults to the paper's for that network, ``dataset`` to the one it was trained on; both
    are stored in the checkpoint for the commands that read it."""
    if layout not in LAYOUTS:
        raise ConversionError(f"unknown layout {layout!r}: expected one of {sorted(LAYOUTS)}")
    state, extras = read_foreign(path)
    target = LAYOUTS[layout](state, extras)
    T = int(T or target.T)
    model_args = {"arch": target.arch, "num_classes": int(target.num_classes), "T": T,
                  "in_channels": int(target.in_channels), "kwargs": dict(target.kwargs), "format": MODEL_ARGS_FORMAT}
    model = create_model(target.arch, num_classes=model_args["num_classes"], T=T,
                         in_channels=model_args["in_channels"], **target.kwargs)
    mapped = map_state(state, target, model, layout)
    model.load_state_dict(mapped, strict=True)
    model.eval()
    config = {"dataset": dataset or target.dataset or "synthetic-dvs", "T": T,
              "dataset_kwargs": dict(dataset_kwargs or {})}
    epoch = extras.get("epoch")
    checkpoint = {
        "model": model.state_dict(), "model_args": model_args, "config": config,
        **({"data": data_record(config, model_args["in_channels"])} if config["dataset"] in IMAGE_SIZES else {}),
        "converted_from": {"layout": layout, "path": str(path), "tensors": len(state),
                           "epoch": int(epoch) if isinstance(epoch, int) else None},
    }
    return model, checkpoint


def write_converted(path: str | Path, layout: str, output: str | Path, **options) -> tuple[torch.nn.Module, dict]:
    """``convert_checkpoint`` and write the result to ``output`` atomically."""
    model, checkpoint = convert_checkpoint(path, layout, **options)
    save_checkpoint(output, checkpoint)
    return model, checkpoint
