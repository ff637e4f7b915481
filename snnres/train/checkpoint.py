"""Checkpoints: one file per save, written atomically, loadable with ``weights_only=True``.

A checkpoint is a dict: ``model`` (state dict), ``model_args`` (arch, num_classes, T,
in_channels, kwargs: enough to rebuild the model), ``config``, and for training
``optimizer``, ``scheduler``, ``scaler``, ``epoch``, ``rng``, ``metrics``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model asked for."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (``snnres.files.atomic_write``).

    A crash at any moment leaves either the old file or the new one, never a half-written one.
    Weights holding NaN or infinity are refused (the file on disk is kept).
    """
    path = Path(path)
    bad = [k for k, v in state.get("model", {}).items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"refusing to write {path}: the weights hold NaN or infinite values "
                              f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); the file on disk is kept")
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a readable snnres checkpoint ({type(error).__name__}: {error}); "
            "it may be truncated or from another program"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "model_args" not in state:
        raise CheckpointError(f"{path} is a torch file but not an snnres checkpoint (no model/model_args)")
    return state


MODEL_ARGS = ("arch", "num_classes", "T", "in_channels")
#: ``model_args["format"]`` of the checkpoints written now. Format 1 (no field) predates the
#: ``convention`` option: its MS-ResNet and DS-ResNet models fired on ``u >= V_th`` and stored tdBN's
#: ``gamma``, so they are rebuilt with ``convention="spikingjelly"`` (the same forward pass).
MODEL_ARGS_FORMAT = 2
_CONVENTION_ARCHS = ("ms-resnet", "ds-resnet")


def build_model(model_args: dict[str, Any], source: str = "the checkpoint") -> torch.nn.Module:
    """The model ``model_args`` describe; a :class:`CheckpointError` says what is wrong with them."""
    from ..models import create_model

    missing = [k for k in MODEL_ARGS if k not in model_args]
    if missing:
        raise CheckpointError(f"{source}: model_args lack {missing} (it holds {sorted(model_args)}); "
                              "it was not written by snnres train, or by an incompatible version")
    kwargs = dict(model_args.get("kwargs", {}))
    if model_args.get("format", 1) < 2 and str(model_args["arch"]).startswith(_CONVENTION_ARCHS):
        kwargs.setdefault("convention", "spikingjelly")
    try:
        return create_model(model_args["arch"], num_classes=model_args["num_classes"], T=model_args["T"],
                            in_channels=model_args["in_channels"], **kwargs)
    except (ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"{source}: cannot build its model {model_args['arch']!r} "
                              f"({type(error).__name__}: {error}); it may come from another snnres version") from None


def load_state_into(model: torch.nn.Module, state_dict: dict[str, Any], source: str, arch: str,
                    allow_missing: list[str] = ()) -> None:
    """``load_state_dict`` with an error that says the checkpoint is of another architecture
    (every tensor must be there with its shape, except the names in ``allow_missing``)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and k not in allow_missing]
    unexpected = [k for k in state_dict if k not in own]
    shape_errors = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state_dict.items()
                    if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if missing or unexpected or shape_errors:
        raise CheckpointError(
            f"{source} does not fit {arch}: {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(shape_errors)} mis-shaped tensors (e.g. {(missing + unexpected + shape_errors)[:3]}); "
            "it was saved from another architecture or other model arguments"
        )
    model.load_state_dict(state_dict, strict=not allow_missing)


def load_initial_weights(model: torch.nn.Module, state_dict: dict[str, Any], source: str, arch: str) -> list[str]:
    """Start ``model`` from a checkpoint's weights (``--init-from``, e.g. a pre-trained encoder).

    Every tensor must fit except the classifier's (the model's last ``nn.Linear``), which is left at
    its fresh initialisation when its shape differs (another number of classes). Returns the names
    of the tensors left out.
    """
    own = model.state_dict()
    linears = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    head = f"{linears[-1]}." if linears else None
    skipped = [k for k, v in state_dict.items()
               if head and k.startswith(head) and k in own and tuple(own[k].shape) != tuple(v.shape)]
    load_state_into(model, {k: v for k, v in state_dict.items() if k not in skipped}, source, arch,
                    allow_missing=skipped)
    return skipped


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint was saved from and load its weights: ``(model, info)``."""
    state = read_checkpoint(path)
    args = state["model_args"]
    model = build_model(args, str(path))
    load_state_into(model, state["model"], str(path), args["arch"])
    info = {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler", "scaler", "rng", "rng_ranks")}
    return model, info


def rng_state() -> dict[str, Any]:
    """Every random state a training step reads, in types ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
