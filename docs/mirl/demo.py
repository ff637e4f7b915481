"""The README's MIRL demonstration: MAE and MIRL pre-training of a shallow and a deep ViT, then fine-tuning.

Every step is an `snnres` command (printed before it runs), on `digits` (scikit-learn's 8x8
handwritten digits, resized to 16x16, 4x4 patches: 16 patches, 4 visible), with ViT-S-54's layout
at reduced width (`vit-small-deep`, width 96, 3 heads of 32). Per depth: MAE and MIRL pre-training
for the same number of epochs, fine-tuning of each, and training from scratch for comparison.
Interrupted runs resume; finished ones are kept. Then the table is printed and
`results.json` and `mirl-digits.png` are written next to this file (or to --docs).

    nice -n 5 python docs/mirl/demo.py --out runs/mirl-demo            # depths 12 and 24
    python docs/mirl/demo.py --depths 6 --pretrain-epochs 2 --finetune-epochs 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("mae", "mirl")


def model_args(depth: int, width: int, heads: int) -> list[str]:
    args = {"depth": depth, "embed_dim": width, "num_heads": heads, "patch_size": 4}
    return [a for k, v in args.items() for a in ("--model-arg", f"{k}={v}")]


def records(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def jobs_for_depth(depth: int, a) -> list[tuple[str, Path, int, list[str]]]:
    """(name, run folder, epochs, command) in the order they must run."""
    root = Path(a.out) / f"depth{depth}"
    arch = ["--arch", "vit-small-deep", *model_args(depth, a.width, a.heads)]
    common = ["--dataset", "digits", "--seed", str(a.seed), "--device", "cpu"]
    jobs = []
    for method in METHODS:
        jobs.append((f"pretrain-{method}", root / f"pretrain-{method}", a.pretrain_epochs,
                     ["pretrain", "--method", method, *arch, *common, "--epochs", str(a.pretrain_epochs)]))
    for method in METHODS:
        init = root / f"pretrain-{method}" / "last.pt"
        jobs.append((f"finetune-{method}", root / f"finetune-{method}", a.finetune_epochs,
                     ["train", "--init-from", str(init), *common, "--epochs", str(a.finetune_epochs)]))
    jobs.append(("scratch", root / "scratch", a.finetune_epochs,
                 ["train", *arch, "--model-arg", "img_size=16", *common, "--epochs", str(a.finetune_epochs)]))
    return jobs


def run_job(name: str, run: Path, epochs: int, command: list[str], timing: dict, lock: threading.Lock) -> None:
    done = records(run)
    if done and done[-1].get("epoch") == epochs:
        return
    resume = ["--resume", str(run / "last.pt")] if (run / "last.pt").exists() else []
    full = [sys.executable, "-m", "snnres", *command, "--out", str(run), *resume]
    print("$ snnres " + " ".join(command + ["--out", str(run)] + resume), flush=True)
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(run.parent / f"{run.name}.out", "a") as log:
        subprocess.run(full, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    with lock:
        timing[str(run)] = timing.get(str(run), 0.0) + time.perf_counter() - start


def sample_load(samples: list, stop: threading.Event) -> None:
    while not stop.wait(60):
        samples.append(os.getloadavg()[0])


def segment_losses(run: Path, batch_size: int = 64) -> dict:
    """Validation losses of a pre-trained run's decoders, alone and (MIRL) in their pairs, recomputed from
    ``last.pt`` on the validation masks the run logged with."""
    import torch

    from snnres.data import make_dataset
    from snnres.pretrain import load_pretrainer, validate
    from snnres.train import read_checkpoint

    state = read_checkpoint(run / "last.pt")
    model = load_pretrainer(state, str(run / "last.pt"))
    cfg = state["config"]
    data = make_dataset(cfg["dataset"], train=False, **cfg["dataset_kwargs"])
    loader = torch.utils.data.DataLoader(data, cfg["batch_size"])
    loss, pairs, alone = validate(model, loader, torch.device("cpu"), cfg["seed"])
    return {"loss": loss, "pairs": dict(zip(model.term_names(), pairs)), "alone": alone}


def zero_prediction_loss() -> float:
    """The loss of predicting 0 (the mean normalised patch), averaged over all validation patches."""
    from snnres.data import make_dataset
    from snnres.pretrain import patch_targets

    target = patch_targets(make_dataset("digits", train=False, size=16).images, 4)
    return float(target.pow(2).mean())


def collect(a, depths: list[int], timing: dict) -> dict:
    result = {"depths": depths, "width": a.width, "heads": a.heads, "pretrain_epochs": a.pretrain_epochs,
              "finetune_epochs": a.finetune_epochs, "seed": a.seed, "runs": {}}
    for depth in depths:
        for name, run, _, command in jobs_for_depth(depth, a):
            logs = records(run)
            entry = {"command": "snnres " + " ".join(command), "minutes": timing.get(str(run), 0.0) / 60,
                     "log": logs}
            if name.startswith("pretrain"):
                entry["final"] = logs[-1]
                entry["segments"] = segment_losses(run)
            else:
                entry["test_top1"] = logs[-1]["test_top1"]
                entry["best_test_top1"] = max(r["test_top1"] for r in logs)
                entry["train_top1"] = logs[-1]["train_top1"]
            result["runs"][f"depth{depth}/{name}"] = entry
    return result


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = result["depths"]
    fig, (curves, bars, acc) = plt.subplots(1, 3, figsize=(15, 4.2))
    colours = dict(zip(depths, ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    for depth in depths:
        mae = result["runs"][f"depth{depth}/pretrain-mae"]["log"]
        mirl = result["runs"][f"depth{depth}/pretrain-mirl"]["log"]
        curves.plot([r["epoch"] for r in mae], [r["val_loss"] for r in mae], color=colours[depth],
                    label=f"MAE, {depth} blocks")
        curves.plot([r["epoch"] for r in mirl], [r["val_loss"] for r in mirl], color=colours[depth], ls="--",
                    label=f"MIRL, {depth} blocks (mean of pairs)")
    curves.set(xlabel="pre-training epoch", ylabel="validation loss (hidden patches, normalised pixels)",
               title="reconstruction loss")
    curves.legend(fontsize=8)
    width = 0.8 / len(depths)
    for i, depth in enumerate(depths):
        seg = result["runs"][f"depth{depth}/pretrain-mirl"]["segments"]
        K = len(seg["alone"])
        x = [k + i * width for k in range(K)]
        bars.bar(x, seg["alone"], width, color=colours[depth], alpha=0.6, label=f"MIRL {depth}: decoder alone")
        pair = [seg["pairs"][f"seg{min(k, K - 1 - k) + 1}+seg{max(k, K - 1 - k) + 1}"] for k in range(K)]
        bars.scatter(x, pair, marker="_", s=300, color="black", zorder=3,
                     label="its pair's sum (shallow + deep)" if i == 0 else None)
        mae = result["runs"][f"depth{depth}/pretrain-mae"]["segments"]["loss"]
        bars.axhline(mae, color=colours[depth], ls=":", label=f"MAE {depth} (one decoder, last block)")
    bars.axhline(result["zero_loss"], color="grey", ls="--", label="predicting 0")
    bars.set_xticks([k + width * (len(depths) - 1) / 2 for k in range(K)], [f"seg {k + 1}" for k in range(K)])
    bars.set(ylabel="final validation loss (hidden patches)", title="reconstruction loss per segment")
    bars.legend(fontsize=7, loc="upper center", ncol=2)
    bars.set_ylim(0, max(max(r["segments"]["alone"]) for k, r in result["runs"].items() if "pretrain-mirl" in k) * 1.45)
    for key, label, marker in (("scratch", "from scratch", "s"), ("finetune-mae", "MAE + fine-tune", "o"),
                               ("finetune-mirl", "MIRL + fine-tune", "^")):
        acc.plot(depths, [100 * result["runs"][f"depth{d}/{key}"]["test_top1"] for d in depths], marker=marker,
                 label=label)
    acc.set(xlabel="encoder depth (blocks)", ylabel="test top-1 (%) after fine-tuning", xticks=depths,
            title=f"digits, {result['finetune_epochs']} fine-tuning epochs")
    acc.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def table(result: dict) -> str:
    rows = ["| depth | pre-training | final val. loss (per pair) | pre-train min | fine-tune test top-1 (best) | "
            "fine-tune min |", "|---|---|---|---|---|---|"]
    for depth in result["depths"]:
        runs = {k.split("/")[1]: v for k, v in result["runs"].items() if k.startswith(f"depth{depth}/")}
        scratch = runs["scratch"]
        rows.append(f"| {depth} | none (from scratch) | - | - | {100 * scratch['test_top1']:.1f}% "
                    f"({100 * scratch['best_test_top1']:.1f}%) | {scratch['minutes']:.1f} |")
        for method in METHODS:
            pre, tuned = runs[f"pretrain-{method}"], runs[f"finetune-{method}"]
            pairs = [f"{v:.3f}" for v in pre["segments"]["pairs"].values()] if method == "mirl" else []
            loss = f"{pre['segments']['loss']:.3f}" + (f" ({', '.join(pairs)})" if pairs else "")
            rows.append(f"| {depth} | {method.upper()} | {loss} | {pre['minutes']:.1f} | "
                        f"{100 * tuned['test_top1']:.1f}% ({100 * tuned['best_test_top1']:.1f}%) | "
                        f"{tuned['minutes']:.1f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/mirl-demo")
    parser.add_argument("--docs", default=str(HERE), help="where results.json and the plot go")
    parser.add_argument("--depths", default="12,24")
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--pretrain-epochs", type=int, default=30)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=2, help="depths run side by side")
    a = parser.parse_args()
    depths = [int(d) for d in a.depths.split(",")]
    timing_path = Path(a.out) / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    lock, stop, load = threading.Lock(), threading.Event(), [os.getloadavg()[0]]
    sampler = threading.Thread(target=sample_load, args=(load, stop), daemon=True)
    sampler.start()
    start = time.perf_counter()

    def chain(depth: int) -> None:
        for job in jobs_for_depth(depth, a):
            job[1].parent.mkdir(parents=True, exist_ok=True)
            run_job(*job, timing, lock)
            with lock:
                timing_path.write_text(json.dumps(timing, indent=1))

    try:
        with ThreadPoolExecutor(a.parallel) as pool:
            list(pool.map(chain, depths))
    finally:
        stop.set()
    result = collect(a, depths, timing)
    result["wall_minutes_this_call"] = (time.perf_counter() - start) / 60
    result["load_average_1min"] = {"mean": sum(load) / len(load), "min": min(load), "max": max(load),
                                   "samples": len(load)}
    result["cpus"] = os.cpu_count()
    result["zero_loss"] = zero_prediction_loss()
    docs = Path(a.docs)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "results.json").write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"wrote {docs / 'results.json'} and {plot(result, docs / 'mirl-digits.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
