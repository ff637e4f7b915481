"""The authors' checkpoint layouts: their state-dict key names, mapped onto snnres's modules.

Each layout reads the architecture off the state dict (blocks per stage, widths, a deep stem),
names the snnres model that holds the same tensors, and renames every key. Sources:

- ``official-ms-resnet`` (Ariande1/MS-ResNet ``train_amp.py``): ``torch.save(net.state_dict())`` of a
  DDP model (``module.`` prefixes), ``conv1.*`` stem, ``conv{2..5}_x.{i}.residual_function.{1,2,4,5}``
  (conv, tdBN, conv, tdBN; ``.bn.`` inside each BN wrapper), ``shortcut.{0,1}`` (104: ``{1,2}``
  after the AvgPool3d), ``fc``.
- ``official-mlf`` (langfengQ/MLF-DSResNet ``train_for_*.py``): ``{"model": state_dict, "epoch"}``,
  ``conv1``, ``bn1.bn`` (``bn0.bn`` on DVS-Gesture's input), ``layer{1..3}.execute.{i}.{conv1, bn1.bn,
  conv2, bn2.bn, shortcut.0, shortcut.1.bn}``, ``voting``. Their BN weight is tdBN's ``lambda``.
- ``official-sew`` (fangwei123456/Spike-Element-Wise-ResNet ``imagenet/train.py``): ``{"model",
  "optimizer", "args", ...}``, ``conv1``, ``bn1``, ``layer{1..4}.{i}.conv{k}.module.{0,1}``,
  ``downsample.0.module.{0,1}``, ``fc``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable


class ConversionError(ValueError):
    """A checkpoint that is not of the layout asked for, or does not fit the snnres model."""


@dataclass(frozen=True)
class Target:
    """The snnres model a checkpoint becomes, and what the converted checkpoint records."""

    arch: str
    num_classes: int
    in_channels: int
    T: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None        # the data set the authors trained it on (eval's default)
    rename: Callable[[str], str | None] = lambda key: None


def _blocks(state: dict, pattern: str, stages: int) -> tuple[int, ...]:
    """Blocks per stage: one more than the largest block index ``pattern`` (groups: stage, index) finds."""
    counts = [0] * stages
    for key in state:
        m = re.match(pattern, key)
        if m and 1 <= int(m.group(1)) <= stages:
            counts[int(m.group(1)) - 1] = max(counts[int(m.group(1)) - 1], int(m.group(2)) + 1)
    return tuple(counts)


def _need(state: dict, key: str, layout: str) -> Any:
    if key not in state:
        sample = ", ".join(list(state)[:4])
        raise ConversionError(f"no {key!r} in the checkpoint: it is not in the {layout} layout "
                              f"(its keys begin {sample}); pick the --from that matches the code it came from")
    return state[key]


# ------------------------------------------------------------------------------------- MS-ResNet

MS_ARCHS = {(2, 2, 2, 2, False): ("ms-resnet18", 6), (3, 4, 6, 3, False): ("ms-resnet34", 6),
            (3, 8, 32, 8, True): ("ms-resnet104", 5)}  # T: the paper's (the code's global is 6)
MS_BRANCH = {"1": "conv1", "2": "bn1", "4": "conv2", "5": "last_bn"}


def ms_resnet(state: dict, extras: dict) -> Target:
    layout = "official-ms-resnet"
    stem, fc = _need(state, "conv1.0.weight", layout), _need(state, "fc.weight", layout)
    deep_stem = "conv1.3.bn.weight" in state
    blocks = _blocks(state, r"conv(\d)_x\.(\d+)\.", 5)[1:]
    found = MS_ARCHS.get((*blocks, deep_stem))
    if found is None:
        raise ConversionError(f"{layout}: {blocks} blocks per stage{' with the 104 stem' if deep_stem else ''} "
                              "is none of MS-ResNet-18 (2,2,2,2), 34 (3,4,6,3) or 104 (3,8,32,8)")
    arch, T = found

    def rename(key: str) -> str | None:
        if m := re.fullmatch(r"conv1\.(\d)\.bn\.(\w+)", key):
            return f"stem.1.module.{m[2]}"
        if m := re.fullmatch(r"conv1\.(\d)\.(weight|bias)", key):
            return f"stem.0.module.{m[1]}.{m[2]}" if deep_stem else (f"stem.0.module.{m[2]}" if m[1] == "0" else None)
        if m := re.fullmatch(r"conv(\d)_x\.(\d+)\.residual_function\.(\d)\.(?:bn\.)?(\w+)", key):
            part = MS_BRANCH.get(m[3])
            return part and f"stages.{int(m[1]) - 2}.{m[2]}.{part}.module.{m[4]}"
        if m := re.fullmatch(r"conv(\d)_x\.(\d+)\.shortcut\.(\d)\.(?:bn\.)?(\w+)", key):
            conv, bn = ("1", "2") if deep_stem else ("0", "1")
            where = {conv: "0.module.1" if deep_stem else "0.module", bn: "1.module"}.get(m[3])
            return where and f"stages.{int(m[1]) - 2}.{m[2]}.shortcut.{where}.{m[4]}"
        if m := re.fullmatch(r"fc\.(weight|bias)", key):
            return f"head.fc.{m[1]}"
        return None

    return Target(arch, fc.shape[0], stem.shape[1], T, {"convention": "official"}, "imagenet", rename)


# ------------------------------------------------------------------------------------- DS-ResNet

MLF_SETS = {  # widths (and the input tdBN) -> the data set and T of the authors' scripts
    ((64, 128, 256), False): ("cifar10", 4),
    ((16, 32, 64), True): ("dvs-gesture", 40),
    ((32, 64, 128), False): ("cifar10-dvs", 10),
}
DS_PARTS = {"conv1": "conv1.module", "bn1.bn": "bn1.module", "conv2": "conv2.module", "bn2.bn": "last_bn.module",
            "shortcut.0": "shortcut.0.module", "shortcut.1.bn": "shortcut.1.module"}


def ds_resnet(state: dict, extras: dict) -> Target:
    layout = "official-mlf"
    conv1, voting = _need(state, "conv1.weight", layout), _need(state, "voting.weight", layout)
    blocks = _blocks(state, r"layer(\d)\.execute\.(\d+)\.", 3)
    if len(set(blocks)) != 1 or blocks[0] == 0:
        raise ConversionError(f"{layout}: {blocks} blocks per stage; DS-ResNet has the same number n in each of "
                              "its 3 stages (depth 6n+2): this is not one of the authors' DS-ResNets")
    widths = tuple(int(_need(state, f"layer{i}.execute.0.conv1.weight", layout).shape[0]) for i in (1, 2, 3))
    input_norm = "bn0.bn.running_mean" in state
    dataset, T = MLF_SETS.get((widths, input_norm), (None, 4))
    offset = 1 if input_norm else 0

    def rename(key: str) -> str | None:
        if m := re.fullmatch(r"bn0\.bn\.(\w+)", key):
            return f"stem.0.module.{m[1]}"
        if key == "conv1.weight":
            return f"stem.{offset}.module.weight"
        if m := re.fullmatch(r"bn1\.bn\.(\w+)", key):
            return f"stem.{offset + 1}.module.{m[1]}"
        if m := re.fullmatch(r"layer(\d)\.execute\.(\d+)\.(conv1|bn1\.bn|conv2|bn2\.bn|shortcut\.0|shortcut\.1\.bn)\.(\w+)",
                             key):
            return f"stages.{int(m[1]) - 1}.{m[2]}.{DS_PARTS[m[3]]}.{m[4]}"
        if m := re.fullmatch(r"voting\.(weight|bias)", key):
            return f"head.fc.{m[1]}"
        return None

    kwargs = {"widths": list(widths), "input_norm": input_norm, "convention": "official"}
    return Target(f"ds-resnet{6 * blocks[0] + 2}", voting.shape[0], conv1.shape[1], T, kwargs, dataset, rename)


# ------------------------------------------------------------------------------------- SEW-ResNet

SEW_ARCHS = {((2, 2, 2, 2), False): "sew-resnet18", ((3, 4, 6, 3), False): "sew-resnet34",
             ((3, 4, 6, 3), True): "sew-resnet50"}


def sew_resnet(state: dict, extras: dict) -> Target:
    layout = "official-sew"
    conv1, fc = _need(state, "conv1.weight", layout), _need(state, "fc.weight", layout)
    if any(".downsample.module." in key for key in state):
        raise ConversionError(f"{layout}: this is the plain Spiking ResNet of the SEW paper (spiking_resnet.py: "
                              "the shortcut is added before the last neuron), which snnres does not build")
    bottleneck = any(re.search(r"\.conv3\.module\.", key) for key in state)
    blocks = _blocks(state, r"layer(\d)\.(\d+)\.", 4)
    arch = SEW_ARCHS.get((blocks, bottleneck))
    if arch is None:
        raise ConversionError(f"{layout}: {blocks} blocks per stage ({'bottleneck' if bottleneck else 'basic'}) is "
                              "none of SEW-ResNet-18/34/50, the depths snnres builds (101 and 152 are not)")
    args = extras.get("args")
    connect = str(getattr(args, "connect_f", None) or "ADD").upper()
    T = int(getattr(args, "T", None) or 4)

    def rename(key: str) -> str | None:
        if key == "conv1.weight":
            return "stem.0.module.weight"
        if m := re.fullmatch(r"bn1\.(\w+)", key):
            return f"stem.1.module.{m[1]}"
        if m := re.fullmatch(r"layer(\d)\.(\d+)\.conv(\d)\.module\.([01])\.(\w+)", key):
            return f"stages.{int(m[1]) - 1}.{m[2]}.branch.{3 * (int(m[3]) - 1) + int(m[4])}.module.{m[5]}"
        if m := re.fullmatch(r"layer(\d)\.(\d+)\.downsample\.0\.module\.([01])\.(\w+)", key):
            return f"stages.{int(m[1]) - 1}.{m[2]}.shortcut.{m[3]}.module.{m[4]}"
        if m := re.fullmatch(r"fc\.(weight|bias)", key):
            return f"head.fc.{m[1]}"
        return None

    return Target(arch, fc.shape[0], conv1.shape[1], T, {"connect": connect}, "imagenet", rename)


#: ``snnres convert --from NAME``: the reader of each layout
LAYOUTS: dict[str, Callable[[dict, dict], Target]] = {
    "official-ms-resnet": ms_resnet,
    "official-mlf": ds_resnet,
    "official-sew": sew_resnet,
}
