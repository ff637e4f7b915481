"""How fast is one multi-step LIF layer, forward and forward+backward, against its peers?

Times a ``[T=8, N=2^20]`` fp32 LIF (sigmoid surrogate, hard reset, SpikingJelly's default neuron)
for each snnres backend, SpikingJelly 2.0 and Norse in the same process, plus a memory copy of
the same bytes as the bandwidth ceiling, and counts the bytes each keeps for the backward
(``torch.autograd.graph.saved_tensors_hooks``). Prints a table, writes JSON.

The measurement is repeated in ``--rounds`` interleaved rounds (every library once per round, in
turn), so that a shared machine's drift falls on all of them alike; the table gives each time's
median over the rounds, and the JSON every round's times and the range of the per-round ratios.

On the CPU, allocation matters as much as the kernels: every library returns fresh output
tensors, and a fresh page costs a fault (on this project's VM about as much as the LIF kernel
itself for 32 MiB). glibc's default switches between handing back fresh pages and reusing freed
memory depending on the process's history, which made earlier runs disagree by 2x. ``--allocator``
fixes it: ``fresh`` (every tensor of 128 KiB or more is new pages, glibc's behaviour for 32 MiB
tensors), ``reuse`` (freed memory is reused: what a caching allocator such as jemalloc gives), or
``default`` (glibc as it comes). The table's last column is the process's minor page faults per
forward+backward call (fresh pages touched), so a run whose allocator handed out new pages shows it.

    python benchmarks/lif.py [--device cpu|cuda] [--allocator reuse|fresh|default] [--rounds 5] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from snnres.functional import lif
from snnres.neurons.backends import unavailable_reason


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def set_allocator(mode: str) -> None:
    """Pin glibc malloc's large-allocation policy (``mallopt``) for this process (see module doc)."""
    if mode == "default":
        return
    import ctypes

    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError as error:
        raise SystemExit(f"--allocator {mode} needs glibc ({error}); use --allocator default") from None
    if mode == "fresh":  # a fixed threshold: glibc no longer raises it after a free
        ok = libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    else:  # reuse: never mmap, never give memory back
        ok = libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1)
    if not ok:
        raise SystemExit(f"mallopt refused --allocator {mode}")


def timed_ms(fn: Callable[[], object], device: str, repeats: int, faults: dict | None = None,
             key: str = "") -> float:
    """Median wall time of ``fn`` in ms after two warm-up calls (the first compiles kernels).

    ``faults[key]``: the process's minor page faults per timed call (fresh pages the call touched).
    """
    def sync():
        if device == "cuda":
            torch.cuda.synchronize()
    fn(), fn()
    sync()
    samples = []
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - start) * 1e3)
    if faults is not None:
        faults[key] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeats
    return statistics.median(samples)


def saved_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct tensors autograd keeps between forward and backward."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if t.numel() > 1:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def peers(T: int, device: str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """name -> function from x [T, N] to spikes [T, N], each starting from rest."""
    runs: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    for backend in ("torch", "numba", "cupy"):
        if unavailable_reason(backend, device) is None:
            runs[f"snnres-{backend}"] = lambda x, b=backend: lif(x, backend=b)[0]
    try:
        from spikingjelly.activation_based import neuron as sj_neuron

        node = sj_neuron.LIFNode(tau=2.0, step_mode="m")

        def spikingjelly(x):
            node.reset()
            return node(x)
        runs["spikingjelly-2.0"] = spikingjelly
    except ImportError as error:
        print(f"SpikingJelly not benchmarked: {error}")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from norse.torch import LIFBoxCell, LIFBoxParameters
        # Norse's leaky membrane without synaptic current, tau_mem 1/dt = 2 steps, threshold 1.
        cell = LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(500.0), v_th=torch.tensor(1.0)), dt=1e-3)

        def norse(x):
            state, out = None, []
            for xt in x:
                z, state = cell(xt, state)
                out.append(z)
            return torch.stack(out)
        runs["norse-1.1"] = norse
    except ImportError as error:
        print(f"Norse not benchmarked: {error}")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--log2-neurons", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (median)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds over all libraries (median)")
    parser.add_argument("--allocator", choices=("reuse", "fresh", "default"), default="reuse",
                        help="CPU: glibc's policy for large tensors (module doc); ignored on CUDA")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    device, T, N = args.device, args.T, 2 ** args.log2_neurons
    allocator = args.allocator if device == "cpu" else "caching (CUDA)"
    if device == "cpu":
        set_allocator(args.allocator)
    x = torch.randn(T, N, device=device) + 0.5
    grad = torch.randn_like(x)
    nbytes = x.numel() * x.element_size()

    y = torch.empty_like(x)
    runs = peers(T, device)
    xg = x.clone().requires_grad_()
    saved = {name: saved_bytes(lambda run=run: run(xg)) / nbytes for name, run in runs.items()}
    rounds: list[dict] = []
    fault_rounds: list[dict] = []
    for _ in range(args.rounds):
        faults: dict[str, float] = {}
        times = {"copy_with_alloc": timed_ms(lambda: x.clone(), device, args.repeats),
                 "copy": timed_ms(lambda: y.copy_(x), device, args.repeats)}
        for name, run in runs.items():
            def forward(run=run):
                with torch.no_grad():
                    return run(x)

            def forward_backward(run=run):
                xg.grad = None
                run(xg).backward(grad)

            times[f"{name}/fwd"] = timed_ms(forward, device, args.repeats, faults, f"{name}/fwd")
            times[f"{name}/fwd+bwd"] = timed_ms(forward_backward, device, args.repeats, faults, f"{name}/fwd+bwd")
        rounds.append(times)
        fault_rounds.append(faults)
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    # Bandwidth ceiling: a copy into an existing buffer moves 2 passes of the input's bytes.
    # Least traffic: forward reads x, writes spikes (2 passes); backward reads x and grad, writes grad_x (3).
    copy_alloc_ms, copy_ms = median["copy_with_alloc"], median["copy"]
    ceiling_fwd_ms = copy_ms
    ceiling_fb_ms = copy_ms * 5 / 2
    ours_name = next(f"snnres-{b}" for b in ("cupy", "numba", "torch") if f"snnres-{b}" in runs)
    rows = []
    for name in runs:
        fwd, fb = median[f"{name}/fwd"], median[f"{name}/fwd+bwd"]
        ratios = {phase: [r[f"{name}/{phase}"] / r[f"{ours_name}/{phase}"] for r in rounds] for phase in ("fwd", "fwd+bwd")}
        rows.append({
            "name": name, "forward_ms": fwd, "forward_backward_ms": fb, "saved_bytes_per_input_byte": saved[name],
            "forward_vs_ceiling": ceiling_fwd_ms / fwd, "forward_backward_vs_ceiling": ceiling_fb_ms / fb,
            "ours_speedup_forward": fwd / median[f"{ours_name}/fwd"],
            "ours_speedup_forward_backward": fb / median[f"{ours_name}/fwd+bwd"],
            "ours_speedup_forward_range": [min(ratios["fwd"]), max(ratios["fwd"])],
            "ours_speedup_forward_backward_range": [min(ratios["fwd+bwd"]), max(ratios["fwd+bwd"])],
            "page_faults_per_call_forward_backward": statistics.median(f[f"{name}/fwd+bwd"] for f in fault_rounds),
        })

    result = {
        "benchmark": "lif", "device": device, "machine": machine(device), "T": T, "neurons": N,
        "dtype": "float32", "torch": torch.__version__, "ours": ours_name, "rounds": args.rounds, "allocator": allocator,
        "copy_with_alloc_ms": copy_alloc_ms, "copy_preallocated_ms": copy_ms,
        "copy_bandwidth_gb_s": 2 * nbytes / copy_ms / 1e6, "rows": rows, "per_round_ms": rounds,
        "per_round_page_faults_per_call": fault_rounds,
    }
    print(f"LIF [T={T}, N=2^{args.log2_neurons}] fp32 on {result['machine']}, allocator {allocator}, median of {args.rounds} rounds")
    print(f"memory copy of the input: {copy_alloc_ms:.2f} ms allocating, {copy_ms:.2f} ms into a buffer")
    header = (f"{'':18s} {'fwd ms':>8s} {'fwd+bwd ms':>11s} {'ours faster fwd':>16s} {'fwd+bwd':>8s} {'fwd/ceil':>9s} "
              f"{'f+b/ceil':>9s} {'saved/input':>12s} {'f+b faults/call':>16s}")
    print(header)
    for r in rows:
        print(f"{r['name']:18s} {r['forward_ms']:8.2f} {r['forward_backward_ms']:11.2f} "
              f"{r['ours_speedup_forward']:15.2f}x {r['ours_speedup_forward_backward']:7.2f}x "
              f"{r['forward_vs_ceiling']:9.2f} {r['forward_backward_vs_ceiling']:9.2f} "
              f"{r['saved_bytes_per_input_byte']:12.2f} {r['page_faults_per_call_forward_backward']:16.0f}   fwd+bwd ratio over rounds "
              f"{r['ours_speedup_forward_backward_range'][0]:.1f}-{r['ours_speedup_forward_backward_range'][1]:.1f}x")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (f"lif-{device}.json" if device != "cpu" else f"lif-cpu-{args.allocator}.json")
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
