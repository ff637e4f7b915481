"""The ``snnres`` command: parses arguments, calls library functions, prints results."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .neurons.demo import run_demo

    console = Console()
    console.print(f"LIF layer, T={args.T}, {args.neurons} neurons, fp32: every backend that can run here")
    rows = run_demo(T=args.T, neurons=args.neurons, repeats=args.repeats)
    table = Table("backend", "device", "forward ms", "fwd+bwd ms", "firing rate", "spikes == torch")
    ran = [r for r in rows if r.equal_to_torch is not None]
    for r in ran:
        table.add_row(r.backend, r.device, f"{r.forward_ms:.2f}", f"{r.forward_backward_ms:.2f}",
                      f"{r.firing_rate:.3f}", str(r.equal_to_torch))
    console.print(table)
    for r in rows:
        if r.equal_to_torch is None:
            console.print(f"{r.backend} on {r.device} skipped: {r.note}", markup=False)
    if not all(r.equal_to_torch for r in ran):
        console.print("[red]a backend disagrees with the torch reference[/red]")
        return 1
    return 0


def _backends(args: argparse.Namespace) -> int:
    from .neurons.backends import BACKENDS, unavailable_reason

    for device in ("cpu", "cuda"):
        for name in BACKENDS:
            reason = unavailable_reason(name, device)
            print(f"{name:6s} {device:5s} {'ok' if reason is None else 'unavailable: ' + reason}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snnres", description="Deep residual spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a LIF layer through every available backend")
    demo.add_argument("--T", type=int, default=8, help="time steps (default 8)")
    demo.add_argument("--neurons", type=int, default=2**16, help="neurons in the layer (default 65536)")
    demo.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    demo.set_defaults(func=_demo)
    sub.add_parser("backends", help="which neuron backends can run here, and why not").set_defaults(func=_backends)
    sub.add_parser("models", help="list the registered architectures").set_defaults(func=_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
