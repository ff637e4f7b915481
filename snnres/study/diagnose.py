"""Signal propagation through depth: per-block gradient norm and firing rate.

At initialisation and after a few training steps, for every block: the norm of the loss gradient
at the block's output (MS-ResNet's block dynamical isometry predicts it flat through depth; in a
plain network it shrinks towards the input) and the firing rate of the block's neurons.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..files import write_text
from ..models import create_model
from ..neurons import SpikingNeuron


def _profile(model, x, y) -> dict[str, list[float]]:
    grads: dict[int, float] = {}
    rates: dict[int, list[float]] = {}
    handles = []
    for i, block in enumerate(model.blocks()):
        def keep(module, inputs, output, i=i):
            output.register_hook(lambda g: grads.__setitem__(i, g.norm().item()))
        handles.append(block.register_forward_hook(keep))
        for m in block.modules():
            if isinstance(m, SpikingNeuron):
                handles.append(m.register_forward_hook(
                    lambda mod, inp, out, i=i: rates.setdefault(i, []).append(out.detach().float().mean().item())))
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    for h in handles:
        h.remove()
    n = len(model.blocks())
    return {"grad_norm": [grads.get(i, 0.0) for i in range(n)],
            "firing_rate": [sum(rates[i]) / len(rates[i]) if rates.get(i) else 0.0 for i in range(n)]}


def diagnose(arch: str, steps: int = 3, batch_size: int = 1, T: int = 2, size: int = 16, in_channels: int = 2,
             num_classes: int = 10, lr: float = 0.05, seed: int = 0, **model_kwargs) -> dict[str, Any]:
    """Profiles at initialisation and after ``steps`` SGD steps on a fixed random batch."""
    torch.manual_seed(seed)
    model = create_model(arch, num_classes=num_classes, T=T, in_channels=in_channels, **model_kwargs)
    if not hasattr(model, "blocks"):
        raise ValueError(f"{arch} is not a block-structured spiking network; diagnose takes the spiking families")
    x = torch.rand(batch_size, in_channels, size, size)
    y = torch.randint(0, num_classes, (batch_size,))
    model.train()
    result = {"arch": arch, "blocks": len(model.blocks()), "steps": steps, "batch_size": batch_size, "T": T,
              "init": _profile(model, x, y)}
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    result["trained"] = _profile(model, x, y)
    return result


def write_diagnosis(result: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"diagnose-{result['arch']}.json"
    write_text(json_path, json.dumps(result, indent=2))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for phase in ("init", "trained"):
        label = "initialisation" if phase == "init" else f"after {result['steps']} steps"
        blocks = range(1, result["blocks"] + 1)
        axes[0].plot(blocks, result[phase]["grad_norm"], label=label)
        axes[1].plot(blocks, result[phase]["firing_rate"], label=label)
    axes[0].set_yscale("log")
    axes[0].set_title("||dL/d block output||")
    axes[1].set_title("firing rate of the block's neurons")
    for ax in axes:
        ax.set_xlabel("block (input -> output)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['arch']}: signal propagation", fontsize=10)
    fig.tight_layout()
    png_path = out / f"diagnose-{result['arch']}.png"
    fig.savefig(png_path, dpi=150)
    plt.close(fig)
    return json_path, png_path
