"""The papers' training recipes by name: ``snnres train --recipe ms-resnet18-imagenet``.

Each is what the authors' released training script does (their code, not only the paper's text),
as ``TrainConfig`` options; ``--recipe NAME`` applies one above the data set's snnres defaults
(``config.RECIPES``), and a YAML file or flags still override it. ``notes`` says where snnres
cannot follow the script exactly. Where they differ from snnres's own defaults:

- weight decay on every parameter (``weight_decay_on="all"``) rather than on conv / linear weights
  only: the papers' SGD decays BN scales and biases too (snnres does not, as is usual since Goyal
  et al. 2017; it matters little at 1e-5 but at DS-ResNet's 1e-3 on CIFAR10-DVS it shrinks tdBN);
- the learning rate stepped per epoch (``cosine-epoch``: PyTorch's ``CosineAnnealingLR``; ``step``:
  ``StepLR``) rather than snnres's per-step cosine with warm-up;
- the authors' conventions in the model (``convention="official"``, already the presets' default).
"""

from __future__ import annotations

from typing import Any

_MS_IMAGENET = dict(
    dataset="imagenet", epochs=125, batch_size=256, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=1e-5,
    weight_decay_on="all", lr_schedule="cosine-epoch", warmup_epochs=0.0, label_smoothing=0.1, amp=True,
    amp_dtype="fp16", sync_bn=True, seed=445, lr_epoch_offset=1, model_kwargs={"convention": "official"},
    dataset_kwargs={"auto_augment": True},
)
_MS_NOTES = ("Ariande1/MS-ResNet train_amp.py: SGD 0.9, lr 0.1 at batch 256, weight decay 1e-5 on all "
             "parameters (the README's erratum to the paper's 1e-4), CosineAnnealingLR(T_max=125, "
             "last_epoch=0) per epoch, which ends one epoch early at lr 0 (lr_epoch_offset=1 follows it within "
             "1.6e-5 of lr), label smoothing 0.1, AMP (fp16), SyncBN, seed 445. Training crops: "
             "RandomResizedCrop(224) + AutoAugment, as theirs (auto_augment=True).")
_MLF = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay_on="all", lr_schedule="step", lr_step_epochs=40,
            lr_step_gamma=0.1, warmup_epochs=0.0, label_smoothing=0.0, model_kwargs={"convention": "official"})
_MLF_EVENT_NOTES = ("Their frames are fixed-length windows from the start of each recording; snnres's bin the "
                    "whole recording into T equal parts (Tonic's ToFrame(n_time_bins=T)).")
_SEW_IMAGENET = dict(
    dataset="imagenet", T=4, epochs=320, batch_size=256, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=0.0,
    lr_schedule="cosine-epoch", warmup_epochs=0.0, label_smoothing=0.0, amp=True, amp_dtype="fp16", seed=2020,
)
_SEW_NOTES = ("fangwei123456/Spike-Element-Wise-ResNet imagenet/train.py as logged (origin_logs/.../args.txt): "
              "8 GPUs x batch 32, SGD 0.9, lr 0.1, no weight decay, CosineAnnealingLR(T_max=320) per epoch, "
              "AMP, T=4, connect ADD, seed 2020.")

#: name -> {"options": TrainConfig options, "source": where they come from, "notes": what differs}
PAPER_RECIPES: dict[str, dict[str, Any]] = {
    "ms-resnet18-imagenet": {"options": dict(_MS_IMAGENET, arch="ms-resnet18", T=6), "notes": _MS_NOTES,
                             "result": "63.10% top-1 (paper, T=6)"},
    "ms-resnet34-imagenet": {"options": dict(_MS_IMAGENET, arch="ms-resnet34", T=6), "notes": _MS_NOTES,
                             "result": "69.42% top-1 (paper, T=6)"},
    "ms-resnet104-imagenet": {"options": dict(_MS_IMAGENET, arch="ms-resnet104", T=5),
                              "notes": _MS_NOTES + " T=5 is the paper's for 104 (the script's global is 6).",
                              "result": "74.21% top-1 at 224, 76.02% at 288 test crops (paper, T=5)"},
    "ds-resnet20-cifar10": {
        "options": dict(_MLF, arch="ds-resnet20", dataset="cifar10", T=4, epochs=110, batch_size=64, weight_decay=1e-4,
                        seed=1),
        "notes": ("langfengQ/MLF-DSResNet train_for_cifar10.py: SGD 0.9, lr 0.1, weight decay 1e-4 on all "
                  "parameters, StepLR(40, 0.1), 110 epochs, batch 64, crop + flip, seed 1. Their normalisation "
                  "std is (0.2023, 0.1994, 0.2010), snnres's CIFAR-10 (0.2470, 0.2435, 0.2616)."),
        "result": "94.25% (paper)"},
    "ds-resnet14-cifar10-dvs": {
        "options": dict(_MLF, arch="ds-resnet14", dataset="cifar10-dvs", T=10, epochs=100, batch_size=32,
                        weight_decay=1e-3, seed=1, model_kwargs={"convention": "official", "widths": [32, 64, 128]},
                        dataset_kwargs={"downsample": 42 / 128}),
        "notes": ("train_for_dvscifar10.py: weight decay 1e-3 on all parameters (snnres's CIFAR10-DVS default "
                  "is 1e-4 on weights), StepLR(40, 0.1), 100 epochs, batch 32, 10 frames of 10 ms at 42x42. "
                  + _MLF_EVENT_NOTES),
        "result": "70.36% (paper)"},
    "ds-resnet20-dvs-gesture": {
        "options": dict(_MLF, arch="ds-resnet20", dataset="dvs-gesture", T=40, epochs=120, batch_size=28,
                        weight_decay=1e-4, seed=2,
                        model_kwargs={"convention": "official", "widths": [16, 32, 64], "input_norm": True},
                        dataset_kwargs={"downsample": 0.25}),
        "notes": ("train_for_gesture.py: weight decay 1e-4 on all parameters, StepLR(40, 0.1), 120 epochs, "
                  "batch 28, 40 frames of 30 ms at 32x32, a non-affine tdBN on the input, seed 2. "
                  + _MLF_EVENT_NOTES),
        "result": "97.29% (paper)"},
    "sew-resnet18-imagenet": {"options": dict(_SEW_IMAGENET, arch="sew-resnet18"), "notes": _SEW_NOTES,
                              "result": "63.18% top-1 (paper)"},
    "sew-resnet34-imagenet": {"options": dict(_SEW_IMAGENET, arch="sew-resnet34"), "notes": _SEW_NOTES,
                              "result": "67.04% top-1 (paper)"},
    "sew-resnet50-imagenet": {"options": dict(_SEW_IMAGENET, arch="sew-resnet50"), "notes": _SEW_NOTES,
                              "result": "67.78% top-1 (paper)"},
}


def paper_recipe(name: str) -> dict[str, Any]:
    """The ``TrainConfig`` options of recipe ``name``; an error listing the recipes otherwise."""
    if name not in PAPER_RECIPES:
        import difflib

        close = difflib.get_close_matches(name, PAPER_RECIPES, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown recipe {name!r}.{hint} Recipes: {', '.join(sorted(PAPER_RECIPES))}")
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in PAPER_RECIPES[name]["options"].items()}
