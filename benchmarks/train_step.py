"""How fast is one training step, and how much does it keep for the backward, against SpikingJelly?

One step (forward, cross-entropy, backward, SGD with momentum) of snnres's ``ms-resnet18`` (64x64
and 224x224 input), ``ms-resnet-cifar56`` (32x32) and ``ds-resnet20`` (32x32), batch 8, T=4, fp32,
against the same network built from SpikingJelly 2.0 parts (its multi-step ``LIFNode``, a
sum of ``LIFNode``s for the MLF neuron, its ``layer.Conv2d`` / ``BatchNorm2d`` /
``ThresholdDependentBatchNorm2d`` / ``SeqToANNContainer``: every snnres layer swapped for
SpikingJelly's, weights copied, so architecture and parameter count are the same by construction
and the first losses agree), and that network under SpikingJelly's ``memopt`` (level 1: every
residual block checkpointed, binary block inputs bit-compressed). snnres runs each memory plan:
``reference`` (plain autograd: the path before the plans), ``default`` and ``lean``.

Per peer: step time (median over ``--rounds`` interleaved rounds; every peer once per round, in
turn; on the CPU the process's CPU time, which another job on a shared machine barely moves, and
the wall time), images/s, and memory three ways:

- ``saved``: bytes of the distinct non-parameter storages autograd saves (``saved_tensors_hooks``).
  It misses what checkpointing keeps in closures (memopt's block inputs), so also
- ``kept``: bytes the allocator holds after the forward that it did not hold before (glibc's
  ``mallinfo2`` on the CPU, ``memory_allocated`` on a GPU): everything the backward will need;
- ``peak``: ``max_memory_allocated`` over a step on a GPU; on the CPU the peak RSS of a fresh
  process that builds the peer, loads its neuron kernels and runs two steps, less its RSS before
  the first step (so it includes the gradients and SGD's momentum, the same for every peer).

``--budget-gib G`` adds ``ms-resnet104`` at 224x224: ``kept`` per sample (from batch 1 and 2; it is
linear in the batch) and the largest batch whose ``kept`` fits in G GiB, per peer.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/train_step.py [--cases ms-resnet18-64,...]
        [--rounds 5] [--batch 8] [--T 4] [--device cpu|cuda] [--budget-gib 16] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from snnres.layers import SeqToANN, ThresholdScaledBatchNorm2d, set_memory
from snnres.models import DualSpikeBlock, MembraneShortcutBlock, SpikeElementWiseBlock, create_model
from snnres.neurons import SpikingNeuron
from snnres.train.memory_report import heap_bytes, measure_saved

CASES = {
    "ms-resnet18-64": ("ms-resnet18", 64),
    "ms-resnet18-224": ("ms-resnet18", 224),
    "ms-resnet-cifar56-32": ("ms-resnet-cifar56", 32),
    "ds-resnet20-32": ("ds-resnet20", 32),
}
BUDGET_CASE = ("ms-resnet104", 224)
SNNRES = ("snnres-reference", "snnres-default", "snnres-lean")
PEERS = (*SNNRES, "spikingjelly", "spikingjelly-memopt")
BASELINE = "snnres-reference"
BLOCKS = (MembraneShortcutBlock, DualSpikeBlock, SpikeElementWiseBlock)


# ----------------------------------------------------------------------------- SpikingJelly twin
class SJMultiLevel(nn.Module):
    """An MLF neuron from SpikingJelly parts: one ``LIFNode`` per level, spikes summed."""

    def __init__(self, nodes: list[nn.Module]):
        super().__init__()
        self.levels = nn.ModuleList(nodes)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return sum(node(x_seq) for node in self.levels)


def _sj_neuron(neuron: SpikingNeuron) -> nn.Module:
    from spikingjelly.activation_based import neuron as sj_neuron, surrogate

    p = neuron.params
    make = {"sigmoid": surrogate.Sigmoid, "atan": surrogate.ATan, "triangle": surrogate.PiecewiseQuadratic,
            "rectangle": surrogate.Rect}[p.surrogate]
    nodes = [sj_neuron.LIFNode(tau=float(neuron.tau), decay_input=p.decay_input, v_threshold=th, v_reset=p.v_reset,
                               detach_reset=p.detach_reset, surrogate_function=make(alpha=p.alpha), step_mode="m")
             for th in p.thresholds]  # SpikingJelly picks its kernels by device itself
    return nodes[0] if len(nodes) == 1 else SJMultiLevel(nodes)


def _sj_layer(module: SeqToANN) -> nn.Module:
    from spikingjelly.activation_based import layer

    inner = module.module
    if type(inner) is nn.Conv2d:
        new = layer.Conv2d(inner.in_channels, inner.out_channels, inner.kernel_size, inner.stride, inner.padding,
                           bias=inner.bias is not None, step_mode="m")
    elif isinstance(inner, ThresholdScaledBatchNorm2d) and inner.affine:
        new = layer.ThresholdDependentBatchNorm2d(1.0, inner.scale, inner.num_features)
    elif type(inner) is nn.BatchNorm2d:
        new = layer.BatchNorm2d(inner.num_features, step_mode="m")
    else:
        return layer.SeqToANNContainer(inner)
    new.load_state_dict(inner.state_dict())
    return new


def to_spikingjelly(model: nn.Module) -> nn.Module:
    """``model`` (a copy) with every snnres neuron and time-merged layer replaced by SpikingJelly's."""
    model = copy.deepcopy(model)
    set_memory(model, "reference")
    for name, module in list(model.named_modules()):
        if not name or not isinstance(module, (SpikingNeuron, SeqToANN)):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(getattr(parent, child, None), (SpikingNeuron, SeqToANN)):  # not already replaced above
            setattr(parent, child, _sj_neuron(module) if isinstance(module, SpikingNeuron)
                    else _sj_layer(module))
    return model


# ----------------------------------------------------------------------------- measurements
def allocated(device: str) -> int:
    return torch.cuda.memory_allocated() if device == "cuda" else heap_bytes()


class Peer:
    """One network and its optimizer, with a training step that resets SpikingJelly's state."""

    def __init__(self, name: str, base: nn.Module, x: torch.Tensor, device: str):
        self.name, self.x = name, x
        if name.startswith("snnres-"):
            self.model = set_memory(copy.deepcopy(base), name.removeprefix("snnres-"))
        else:
            self.model = to_spikingjelly(base)
            if name == "spikingjelly-memopt":
                from spikingjelly.activation_based import memopt

                memopt.optimize_memory(self.model, BLOCKS, lambda m: self.forward(), level=1, compress=True)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)

    def reset(self) -> None:
        """SpikingJelly's neurons keep their state between calls: reset before each forward."""
        if not self.name.startswith("snnres-"):
            from spikingjelly.activation_based import functional

            functional.reset_net(self.model)

    def forward(self) -> torch.Tensor:
        self.reset()
        return self.model(self.x)

    def step(self, y: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.forward(), y)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def memory(self, y: torch.Tensor, device: str) -> dict:
        """``saved`` and ``kept`` bytes of one forward (module docstring)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.reset()  # frees the previous step's neuron states before counting
        before = allocated(device)
        parts, logits = measure_saved(self.model, self.x)
        kept = allocated(device) - before
        F.cross_entropy(logits, y).backward()
        self.optimizer.zero_grad(set_to_none=True)
        return {"saved_bytes": sum(b for _, b in parts), "kept_bytes": kept}


def build(case: tuple[str, int], batch: int, T: int, device: str, peers=PEERS) -> tuple[dict, torch.Tensor]:
    arch, size = case
    torch.manual_seed(0)
    base = create_model(arch, num_classes=10, T=T).to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    return {name: Peer(name, base, x, device) for name in peers}, y


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def child_peak(args, case_name: str, peer: str) -> dict:
    """Peak RSS of a fresh process running two steps of ``peer`` (CPU), less its RSS before them."""
    cmd = [sys.executable, __file__, "--child", case_name, peer, "--batch", str(args.batch), "--T", str(args.T),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    if out.returncode != 0:
        return {"error": out.stderr[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def run_child(args) -> None:
    case_name, peer = args.child
    peers, y = build(CASES.get(case_name, BUDGET_CASE), args.batch, args.T, "cpu", peers=(peer,))
    for module in peers[peer].model.modules():  # load the numba kernels first: ~100 MiB of JIT-cache RSS
        if isinstance(module, SpikingNeuron):
            x = torch.randn(args.T, 64, requires_grad=True)
            module(x).sum().backward()
            module.input_grad(x.detach(), torch.ones_like(x))
    Path("/proc/self/clear_refs").write_text("5")  # the peak RSS (VmHWM) starts again from the current RSS
    rss_before = _status_kib("VmRSS")
    for _ in range(2):
        peers[peer].step(y)
    peak = _status_kib("VmHWM")
    print(json.dumps({"rss_before_bytes": rss_before * 1024, "peak_rss_step_bytes": (peak - rss_before) * 1024}))


# ----------------------------------------------------------------------------- the benchmark
def bench_case(args, case_name: str) -> dict:
    load = os.getloadavg()
    peers, y = build(CASES[case_name], args.batch, args.T, args.device)
    counts = {name: sum(p.numel() for p in peer.model.parameters()) for name, peer in peers.items()}
    assert len(set(counts.values())) == 1, f"parameter counts differ: {counts}"
    first_loss = {name: peer.step(y) for name, peer in peers.items()}  # also warms up (numba compiles)
    for peer in peers.values():
        peer.step(y)
    memory = {name: peer.memory(y, args.device) for name, peer in peers.items()}
    cpu = {name: [] for name in peers}
    wall = {name: [] for name in peers}
    for r in range(args.rounds):
        for name, peer in peers.items():
            sync(args.device)
            c, w = time.process_time(), time.perf_counter()
            peer.step(y)
            sync(args.device)
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
        print(f"  {case_name}: round {r + 1}/{args.rounds}", flush=True)
    if args.device == "cuda":
        for name, peer in peers.items():
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
            peer.step(y)
            memory[name]["peak_bytes"] = torch.cuda.max_memory_allocated() - start
    elif not args.no_rss:
        for name in peers:
            memory[name].update(child_peak(args, case_name, name))
    timing = wall if args.device == "cuda" else cpu
    rows = []
    for name in peers:
        ratios = [t / b for t, b in zip(timing[name], timing[BASELINE])]
        rows.append({
            "name": name, "parameters": counts[name], "first_loss": first_loss[name],
            "step_s": statistics.median(timing[name]), "step_s_range": [min(timing[name]), max(timing[name])],
            "wall_s": statistics.median(wall[name]), "cpu_s": statistics.median(cpu[name]),
            "images_per_s": args.batch / statistics.median(timing[name]),
            "time_vs_reference": statistics.median(ratios), "time_vs_reference_range": [min(ratios), max(ratios)],
            **memory[name],
            "saved_vs_reference": memory[name]["saved_bytes"] / memory[BASELINE]["saved_bytes"],
            "kept_vs_reference": memory[name]["kept_bytes"] / memory[BASELINE]["kept_bytes"],
        })
    return {"case": case_name, "arch": CASES[case_name][0], "size": CASES[case_name][1], "rounds": args.rounds,
            "date": date.today().isoformat(), "load_average": load, "rows": rows}


def bench_budget(args) -> dict:
    """``kept`` bytes per sample of ms-resnet104 at 224 (batch 1 and 2) and the batch that fits."""
    per_batch = {}
    for batch in (1, 2):
        peers, y = build(BUDGET_CASE, batch, args.T, args.device, peers=(*SNNRES, "spikingjelly",
                                                                          "spikingjelly-memopt"))
        per_batch[batch] = {name: peer.memory(y, args.device) for name, peer in peers.items()}
        del peers
    budget = args.budget_gib * 2 ** 30
    rows = []
    for name in per_batch[1]:
        slope = {k: per_batch[2][name][k] - per_batch[1][name][k] for k in ("kept_bytes", "saved_bytes")}
        base = {k: per_batch[1][name][k] - slope[k] for k in slope}
        rows.append({"name": name, "kept_bytes_per_sample": slope["kept_bytes"],
                     "saved_bytes_per_sample": slope["saved_bytes"],
                     "max_batch_kept": int((budget - base["kept_bytes"]) // slope["kept_bytes"]),
                     "max_batch_saved": int((budget - base["saved_bytes"]) // slope["saved_bytes"])})
    return {"arch": BUDGET_CASE[0], "size": BUDGET_CASE[1], "budget_gib": args.budget_gib, "T": args.T,
            "date": date.today().isoformat(), "rows": rows}


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    return "cpu"


def print_table(result: dict) -> None:
    mib = 2 ** 20
    for case in result["cases"]:
        print(f"\n{case['case']} (batch {result['batch']}, T={result['T']}):")
        print(f"{'peer':22s} {'step s':>8s} {'vs ref':>14s} {'img/s':>7s} {'saved MiB':>10s} {'kept MiB':>9s} "
              f"{'peak MiB':>9s}")
        for r in case["rows"]:
            peak = r.get("peak_bytes", r.get("peak_rss_step_bytes"))
            lo, hi = r["time_vs_reference_range"]
            print(f"{r['name']:22s} {r['step_s']:8.3f} {r['time_vs_reference']:5.2f} ({lo:.2f}-{hi:.2f}) "
                  f"{r['images_per_s']:7.1f} {r['saved_bytes'] / mib:10.1f} {r['kept_bytes'] / mib:9.1f} "
                  f"{(peak or 0) / mib:9.1f}")
    if "budget" in result:
        b = result["budget"]
        print(f"\n{b['arch']} at {b['size']}x{b['size']}, T={result['T']}: largest batch within {b['budget_gib']} GiB")
        for r in b["rows"]:
            print(f"{r['name']:22s} kept {r['kept_bytes_per_sample'] / mib:8.1f} MiB/sample -> batch "
                  f"{r['max_batch_kept']:5d}   (saved {r['saved_bytes_per_sample'] / mib:8.1f} MiB/sample -> "
                  f"{r['max_batch_saved']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} ('' for none)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--budget-gib", type=float, default=None)
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-process peak RSS (CPU)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        return run_child(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: PyTorch sees no CUDA device")
    result = {"benchmark": "train_step", "device": args.device, "machine": machine(args.device),
              "torch": torch.__version__, "batch": args.batch, "T": args.T, "threads": args.threads,
              "timing": "wall" if args.device == "cuda" else "process CPU time", "cases": []}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"train_step-{args.device}.json"
    for case_name in filter(None, args.cases.split(",")):
        result["cases"].append(bench_case(args, case_name))
        save(path, result)  # each case as soon as it is done: cases run apart accumulate in one file
    if args.budget_gib:
        result["budget"] = bench_budget(args)
    print_table(save(path, result))
    print(f"\nwrote {path}")


def save(path: Path, result: dict) -> dict:
    """Write ``result`` into ``path``, keeping the cases (and budget) of earlier runs it does not redo."""
    merged = dict(result)
    if path.exists():
        old = json.loads(path.read_text())
        if (old.get("batch"), old.get("T"), old.get("device")) == (result["batch"], result["T"], result["device"]):
            done = {c["case"] for c in result["cases"]}
            merged["cases"] = [c for c in old.get("cases", []) if c["case"] not in done] + result["cases"]
            merged.setdefault("budget", old.get("budget"))
    if merged.get("budget") is None:
        merged.pop("budget", None)
    path.write_text(json.dumps(merged, indent=2))
    return merged


if __name__ == "__main__":
    main()
