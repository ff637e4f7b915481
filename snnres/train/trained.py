"""A checkpoint as the other commands use it: the model, the data set it was trained on, its input.

``eval``, ``energy-report``, ``export`` and ``simulate`` need only a checkpoint path: the file
records the architecture (``model_args``), the training options (``config``) and, since training
writes it, what one input looks like (``data``: input shape and sensor size), so no data set has
to be built to learn a shape. Evaluation data is the test split and is never augmented.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


def evaluation_kwargs(dataset_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """A data set's options for evaluation: the same, with augmentation off."""
    kwargs = dict(dataset_kwargs or {})
    if "augment" in kwargs:
        kwargs["augment"] = False
    return kwargs


def data_record(dataset_name: str, sample: torch.Tensor, in_channels: int, sensor_size) -> dict[str, Any]:
    """What a checkpoint stores about its input: ``input_shape`` (one sample, one time step) and
    ``sensor_size`` (event data sets, Tonic's ``(W, H, P)``)."""
    shape = list(sample.shape[1:] if sample.ndim == 4 else sample.shape)
    return {"dataset": dataset_name, "input_shape": [int(s) for s in shape], "in_channels": int(in_channels),
            "sensor_size": [int(s) for s in sensor_size] if sensor_size else None}


@dataclass
class TrainedCheckpoint:
    path: Path
    model: torch.nn.Module
    info: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return self.info.get("config") or {}

    @property
    def T(self) -> int:
        return int(self.info["model_args"]["T"])

    @property
    def dataset_name(self) -> str | None:
        return self.config.get("dataset") or (self.info.get("data") or {}).get("dataset")

    def dataset(self, name: str | None = None, data_dir: str | None = None, T: int | None = None,
                train: bool = False):
        """The checkpoint's data set (or ``name``), test split unless ``train``, never augmented."""
        from ..data import make_dataset

        name = name or self.dataset_name
        if not name:
            raise ValueError(f"{self.path} records no data set: pass --dataset")
        kwargs = evaluation_kwargs(self.config.get("dataset_kwargs")) if name == self.config.get("dataset") else {}
        return make_dataset(name, root=data_dir or self.config.get("data_dir", "datasets"), train=train,
                            T=T or self.T, download=False, **kwargs)

    def loader(self, batch_size: int | None = None, **dataset_options) -> torch.utils.data.DataLoader:
        """A loader over :meth:`dataset` with the training run's batch size unless given (the same
        batches as the evaluation during training, so the numbers match it exactly)."""
        size = batch_size or self.config.get("batch_size") or 64
        return torch.utils.data.DataLoader(self.dataset(**dataset_options), size)

    def input_shape(self) -> tuple[int, ...]:
        """One sample at one time step, e.g. ``(2, 32, 32)``: recorded, else read off the data set."""
        record = self.info.get("data") or {}
        if record.get("input_shape"):
            return tuple(record["input_shape"])
        try:
            sample = self.dataset()[0][0]
        except Exception as error:
            raise ValueError(f"{self.path} records no input shape and its data set cannot be read to learn it "
                             f"({type(error).__name__}: {str(error).splitlines()[0]}); pass --input-shape C H W") from None
        return tuple(sample.shape[1:] if sample.ndim == 4 else sample.shape)

    def sensor_size(self) -> tuple[int, int, int] | None:
        """The event sensor ``(W, H, P)`` the model was trained on (None for image data sets)."""
        record = self.info.get("data") or {}
        if "sensor_size" in record:
            return tuple(record["sensor_size"]) if record["sensor_size"] else None
        try:
            size = getattr(self.dataset(), "sensor_size", None)
        except Exception:  # the data set is not on this machine
            return None
        return tuple(int(v) for v in size) if size else None


def open_trained(path: str | Path) -> TrainedCheckpoint:
    """Load a checkpoint (``snnres.load_checkpoint``) with the helpers above."""
    import snnres  # through the package, so tests can stand a model in for the file

    model, info = snnres.load_checkpoint(path)
    return TrainedCheckpoint(Path(path), model, info)
