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


def _key_values(pairs: list[str] | None) -> dict:
    """``["depth=12", "connect=ADD"]`` -> ``{"depth": 12, "connect": "ADD"}`` (values parsed as YAML)."""
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {pair!r}")
        out[key.replace("-", "_")] = yaml.safe_load(value)
    return out


TRAIN_FLAGS = {  # flag -> (type, help); every one maps onto a TrainConfig field
    "--arch": (str, "architecture (snnres models lists them)"),
    "--dataset": (str, "data set (default synthetic-dvs, built in)"),
    "--data-dir": (str, "data root (default datasets/)"),
    "--epochs": (int, "epochs"),
    "--batch-size": (int, "global batch size (split over DDP processes)"),
    "--T": (int, "time steps"),
    "--lr": (float, "peak learning rate (cosine schedule)"),
    "--optimizer": (str, "sgd or adamw"),
    "--momentum": (float, "SGD momentum"),
    "--weight-decay": (float, "weight decay (not on BatchNorm or biases)"),
    "--label-smoothing": (float, "label smoothing"),
    "--warmup-epochs": (float, "linear warm-up epochs"),
    "--amp-dtype": (str, "bf16 or fp16 with --amp"),
    "--workers": (int, "data loader workers"),
    "--seed": (int, "random seed"),
    "--out": (str, "run folder (config, logs, last.pt, best.pt)"),
    "--resume": (str, "continue exactly from this last.pt"),
    "--init-from": (str, "start from this checkpoint's weights, e.g. snnres pretrain's last.pt (new head)"),
    "--device": (str, "auto, cpu, cuda or cuda:N"),
    "--max-steps-per-epoch": (int, "cap on steps per epoch (smoke runs)"),
}
TRAIN_SWITCHES = {"--amp": "mixed precision on CUDA", "--compile": "torch.compile the model",
                  "--sync-bn": "SyncBatchNorm under DDP (CUDA)", "--download": "download the data set if missing"}


def _overrides(args: argparse.Namespace) -> tuple[dict, set[str]]:
    """A run command's flags as config overrides (None = not given), and the names the user set."""
    overrides = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config", "model_arg", "dataset_arg")}
    if args.model_arg:
        overrides["model_kwargs"] = _key_values(args.model_arg)
    if args.dataset_arg:
        overrides["dataset_kwargs"] = _key_values(args.dataset_arg)
    return overrides, {k for k, v in overrides.items() if v is not None}


def _train(args: argparse.Namespace) -> int:
    from .train import CheckpointError, TrainingDiverged, build_config, train

    overrides, explicit = _overrides(args)
    try:
        cfg = build_config(overrides, args.config)
        train(cfg, explicit)
    except (CheckpointError, TrainingDiverged, ValueError, FileNotFoundError) as error:
        print(f"snnres train: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


PRETRAIN_FLAGS = {  # flag -> (type, help); every one maps onto a PretrainConfig field
    "--method": (str, "mirl (default) or mae"),
    "--arch": (str, "a ViT: vit-tiny (default), vit-small, vit-small-deep"),
    "--dataset": (str, "data set (default digits, scikit-learn's images; event sets: each frame is an image)"),
    "--data-dir": (str, "data root (default datasets/)"),
    "--epochs": (int, "epochs"),
    "--batch-size": (int, "batch size"),
    "--T": (int, "frames per event sample"),
    "--lr": (float, "peak learning rate (AdamW, cosine schedule)"),
    "--weight-decay": (float, "weight decay (not on norms or biases)"),
    "--warmup-epochs": (float, "linear warm-up epochs"),
    "--mask-ratio": (float, "share of patches hidden (default 0.75)"),
    "--segments": (int, "MIRL: encoder segments, each with its own decoder (even; default 6, 4 or 2)"),
    "--decoder-dim": (int, "decoder width (default: the encoder's)"),
    "--decoder-depth": (int, "blocks per decoder (default MIRL 1, MAE 2)"),
    "--decoder-heads": (int, "decoder heads (default: the encoder's)"),
    "--workers": (int, "data loader workers"),
    "--seed": (int, "random seed (weights, data order, masks)"),
    "--out": (str, "run folder (config, logs, last.pt)"),
    "--resume": (str, "continue exactly from this last.pt"),
    "--device": (str, "auto, cpu, cuda or cuda:N"),
    "--max-steps-per-epoch": (int, "cap on steps per epoch (smoke runs)"),
}


def _pretrain(args: argparse.Namespace) -> int:
    from .pretrain import build_pretrain_config, pretrain
    from .train import CheckpointError, TrainingDiverged

    overrides, explicit = _overrides(args)
    try:
        cfg = build_pretrain_config(overrides, args.config)
        pretrain(cfg, explicit)
    except (CheckpointError, TrainingDiverged, ValueError, FileNotFoundError, ImportError, TypeError) as error:
        print(f"snnres pretrain: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .train import CheckpointError, evaluate
    from .train.run import resolve_device

    try:
        model, info, dataset, loader = _checkpoint_loader(args)
    except CheckpointError as error:
        print(f"snnres eval: {error}", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    result = evaluate(model.to(device), loader, device, max_batches=args.max_batches)
    print(f"{args.checkpoint} on {dataset} ({result.samples} samples): top-1 {result.top1:.4f}  "
          f"top-5 {result.top5:.4f}  loss {result.loss:.4f}")
    return 0


def _checkpoint_loader(args, train: bool = False):
    """(model, info, loader) for the commands that run a checkpoint on a data set."""
    from torch.utils.data import DataLoader

    from .data import make_dataset
    from .train import load_checkpoint

    model, info = load_checkpoint(args.checkpoint)
    config = info.get("config") or {}
    dataset = args.dataset or config.get("dataset", "synthetic-dvs")
    extra = (config.get("dataset_kwargs") or {}) if dataset == config.get("dataset") else {}
    data = make_dataset(dataset, root=args.data_dir or config.get("data_dir", "datasets"), train=train,
                        T=args.T or info["model_args"]["T"], **extra)
    return model, info, dataset, DataLoader(data, args.batch_size)


def _energy_report(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .energy import energy_model, energy_report
    from .train import CheckpointError
    from .train.run import resolve_device

    try:
        model, info, dataset, loader = _checkpoint_loader(args)
    except CheckpointError as error:
        print(f"snnres energy-report: {error}", file=sys.stderr)
        return 2
    constants = energy_model(args.preset, args.e_ac, args.e_mac)
    if args.event_driven:
        import json

        import torch

        from .neurons.backends import unavailable_reason
        from .sim.loader_counts import count_over_loader

        try:
            device = resolve_device(args.device)  # the GPU simulator where CuPy can run, else the CPU one
            if device.type == "cuda" and args.device == "auto" and unavailable_reason("cupy", device) is not None:
                device = torch.device("cpu")
            result = count_over_loader(model, loader, args.max_batches, info["model_args"]["T"], device)
        except (RuntimeError, ValueError) as error:
            print(f"snnres energy-report: {error}", file=sys.stderr)
            return 2
        result["energy_pj"] = result["sops"] * constants.e_ac_pj + result["macs"] * constants.e_mac_pj
        print(f"event-driven simulation, {result['samples']} samples, per sample: {result['sops']:.4g} SOPs, "
              f"{result['macs']:.4g} MACs, {result['neuron_updates']:.4g} neuron updates -> "
              f"{result['energy_pj'] / 1e6:.4g} uJ (E_AC {constants.e_ac_pj} pJ, E_MAC {constants.e_mac_pj} pJ)")
        for layer, value in result["per_sample"]["sops"].items():
            print(f"  {layer:40s} {value:12.4g} SOPs")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
            print(f"wrote {args.json}")
        return 0
    device = resolve_device(args.device)
    report = energy_report(model.to(device), loader, args.max_batches, constants, device)
    console = Console()
    table = Table("layer", "kind", "neurons", "spikes/neuron", "firing rate", "SOPs", "MACs",
                  title=f"{info['model_args']['arch']} on {dataset}, {report.samples} samples, per sample")
    for r in report.layers:
        table.add_row(r["name"], r["kind"], str(r["neurons"] or ""),
                      "" if r["spikes_per_neuron"] is None else f"{r['spikes_per_neuron']:.3f}",
                      "" if r["firing_rate"] is None else f"{r['firing_rate']:.4f}",
                      f"{r['sops']:.3g}" if r["sops"] else "", f"{r['macs']:.3g}" if r["macs"] else "")
    console.print(table)
    t = report.total
    spn = "-" if t["spikes_per_neuron"] is None else f"{t['spikes_per_neuron']:.3f}"
    ratio = "-" if t["ann_over_snn"] is None else f"{t['ann_over_snn']:.2f}x"
    console.print(f"spikes per neuron {spn} | SOPs {t['sops']:.4g} | MACs {t['macs']:.4g} | "
                  f"SNN {t['energy_pj'] / 1e6:.4g} uJ vs ANN {t['ann_energy_pj'] / 1e6:.4g} uJ ({ratio}) | "
                  f"E_AC {report.energy.e_ac_pj} pJ, E_MAC {report.energy.e_mac_pj} pJ", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    if args.json:
        console.print(f"wrote {report.to_json(args.json)}", markup=False)
    if args.plot:
        console.print(f"wrote {report.plot(args.plot)}", markup=False)
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export.cli import export_command

    return export_command(args.checkpoint, args.format, args.output, args.dt, args.allow_lossy, args.input_shape)


def _simulate(args: argparse.Namespace) -> int:
    from .sim.cli import simulate_command

    sensor = tuple(args.sensor_size) if args.sensor_size else None
    return simulate_command(args.checkpoint, args.events, args.T, sensor, args.device)


def _sweep_depth(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .study import SWEEP_RECIPE, plot_sweep, sweep_depth
    from .train import build_config

    given = {"dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size, "T": args.T,
             "lr": args.lr, "optimizer": args.optimizer, "weight_decay": args.weight_decay, "seed": args.seed,
             "device": args.device, "max_steps_per_epoch": args.max_steps_per_epoch,
             "model_kwargs": {**SWEEP_RECIPE["model_kwargs"], **_key_values(args.model_arg)},
             "dataset_kwargs": _key_values(args.dataset_arg) if args.dataset_arg else None}
    base = build_config({**SWEEP_RECIPE, **{k: v for k, v in given.items() if v is not None}})
    console = Console()
    families = [f.strip() for f in args.family.split(",") if f.strip()]
    depths = [int(d) for d in args.depths.split(",")]
    results = sweep_depth(families, depths, base, args.out, console)
    png = plot_sweep(results, f"{args.out}/degradation.png")
    console.print(f"wrote {args.out}/results.json and {png}", markup=False)
    for cell in sorted(results["cells"].values(), key=lambda c: (c["family"], c["depth"])):
        console.print(f"{cell['family']:16s} {cell['depth']:4d}  train acc {cell['train_top1']:.3f}  "
                      f"train loss {cell['train_loss']:.3f}  test acc {cell['test_top1']:.3f}", markup=False)
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .study import diagnose, write_diagnosis

    result = diagnose(args.arch, steps=args.steps, batch_size=args.batch_size, T=args.T, size=args.size,
                      **_key_values(args.model_arg))
    table = Table("block", "grad norm (init)", f"grad norm ({args.steps} steps)", "firing rate (init)",
                  title=f"{args.arch}: {result['blocks']} blocks")
    n = result["blocks"]
    for i in sorted(set([0, n - 1] + list(range(0, n, max(1, n // 16))))):
        table.add_row(str(i + 1), f"{result['init']['grad_norm'][i]:.3g}", f"{result['trained']['grad_norm'][i]:.3g}",
                      f"{result['init']['firing_rate'][i]:.3f}")
    console = Console()
    console.print(table)
    json_path, png_path = write_diagnosis(result, args.out)
    console.print(f"wrote {json_path} and {png_path}", markup=False)
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

    train = sub.add_parser("train", help="train a model (default: ms-resnet18 on synthetic-dvs, CPU-sized)")
    train.add_argument("--config", help="YAML file of options; flags override it")
    for flag, (kind, text) in TRAIN_FLAGS.items():
        train.add_argument(flag, type=kind, default=None, help=text)
    for flag, text in TRAIN_SWITCHES.items():
        train.add_argument(flag, action="store_true", default=None, help=text)
    train.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="extra create_model argument")
    train.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE", help="extra make_dataset argument")
    train.set_defaults(func=_train)

    pre = sub.add_parser("pretrain", help="masked image pre-training of a ViT: MIRL or MAE (CPU-sized default)")
    pre.add_argument("--config", help="YAML file of options; flags override it")
    for flag, (kind, text) in PRETRAIN_FLAGS.items():
        pre.add_argument(flag, type=kind, default=None, help=text)
    pre.add_argument("--cross-attention", action=argparse.BooleanOptionalAction, default=None,
                     help="decoders attend to the shallower segments (default: on for MIRL, off for MAE)")
    pre.add_argument("--pred-weight-norm", action=argparse.BooleanOptionalAction, default=None,
                     help="unit-norm prediction layer (default: on for MIRL, off for MAE)")
    pre.add_argument("--norm-pix-loss", action=argparse.BooleanOptionalAction, default=None,
                     help="per-patch normalised target (default on)")
    pre.add_argument("--download", action="store_true", default=None, help="download the data set if missing")
    pre.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                     help="create_model argument (depth, embed_dim, num_heads, patch_size, ...)")
    pre.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE", help="extra make_dataset argument")
    pre.set_defaults(func=_pretrain)

    ev = sub.add_parser("eval", help="top-1/top-5 and loss of a checkpoint")
    ev.add_argument("checkpoint")
    ev.add_argument("--dataset", help="default: the data set it was trained on")
    ev.add_argument("--data-dir")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--T", type=int)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--max-batches", type=int)
    ev.set_defaults(func=_eval)

    er = sub.add_parser("energy-report", help="spikes per neuron, SOPs, MACs and energy vs the ANN")
    er.add_argument("checkpoint")
    er.add_argument("--dataset", help="default: the data set it was trained on (test split)")
    er.add_argument("--data-dir")
    er.add_argument("--batch-size", type=int, default=32)
    er.add_argument("--T", type=int)
    er.add_argument("--max-batches", type=int)
    er.add_argument("--device", default="auto")
    er.add_argument("--preset", default="45nm-fp32", help="energy constants: 45nm-fp32 (default), 45nm-fp16, 45nm-int32, 45nm-int8")
    er.add_argument("--e-ac", type=float, help="pJ per accumulate (overrides the preset)")
    er.add_argument("--e-mac", type=float, help="pJ per multiply-accumulate (overrides the preset)")
    er.add_argument("--json", help="write the report as JSON here")
    er.add_argument("--plot", help="write the report's figure (PNG) here")
    er.add_argument("--event-driven", action="store_true",
                    help="count with the event-driven simulator (exact per-event SOPs and neuron updates)")
    er.set_defaults(func=_energy_report)

    ex = sub.add_parser("export", help="export a checkpoint for neuromorphic hardware (NIR)")
    ex.add_argument("checkpoint")
    ex.add_argument("--format", default="nir", help="output format (nir)")
    ex.add_argument("-o", "--output", required=True, help="file to write, e.g. model.nir")
    ex.add_argument("--dt", type=float, default=1e-4, help="NIR time step in seconds (default 1e-4)")
    ex.add_argument("--allow-lossy", action="store_true", help="export soft reset as hard reset, with a warning")
    ex.add_argument("--input-shape", type=int, nargs="+", metavar="N",
                    help="one sample at one step, e.g. 2 32 32 (default: from the checkpoint's data set)")
    ex.set_defaults(func=_export)

    sm = sub.add_parser("simulate", help="run a checkpoint event by event on an event file, with exact counts")
    sm.add_argument("checkpoint")
    sm.add_argument("--events", required=True, help=".npy of Tonic structured events (x, y, p, t)")
    sm.add_argument("--T", type=int, help="time bins (default: the checkpoint's T)")
    sm.add_argument("--sensor-size", type=int, nargs=3, metavar=("W", "H", "P"),
                    help="sensor size (default: from the checkpoint's data set)")
    sm.add_argument("--device", default="cpu", help="cpu (numba kernels) or cuda[:N] (CuPy kernels)")
    sm.set_defaults(func=_simulate)

    sw = sub.add_parser("sweep-depth", help="the degradation study: accuracy and loss vs depth per family")
    sw.add_argument("--family", default="ms-resnet-cifar,spiking-resnet,sew-resnet,ds-resnet,resnet")
    sw.add_argument("--depths", default="8,14,20,32,56,110")
    sw.add_argument("--dataset", default="synthetic-dvs")
    sw.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE")
    sw.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                    help="model option for every cell (default first_stride=2)")
    sw.add_argument("--epochs", type=int, help="default 12 (the study's recipe, snnres.study.SWEEP_RECIPE)")
    sw.add_argument("--batch-size", type=int, help="default 32")
    sw.add_argument("--T", type=int, help="time steps (default: the data set's)")
    sw.add_argument("--lr", type=float, help="default 2e-3")
    sw.add_argument("--optimizer", help="default adamw")
    sw.add_argument("--weight-decay", type=float, help="default 0.01")
    sw.add_argument("--seed", type=int, default=0)
    sw.add_argument("--device", default="auto")
    sw.add_argument("--max-steps-per-epoch", type=int)
    sw.add_argument("--out", default="runs/sweep")
    sw.set_defaults(func=_sweep_depth)

    dg = sub.add_parser("diagnose", help="per-block gradient norm and firing rate through depth")
    dg.add_argument("--arch", required=True)
    dg.add_argument("--steps", type=int, default=3, help="training steps before the second profile")
    dg.add_argument("--batch-size", type=int, default=1)
    dg.add_argument("--T", type=int, default=2)
    dg.add_argument("--size", type=int, default=16, help="input height and width")
    dg.add_argument("--model-arg", action="append", metavar="KEY=VALUE")
    dg.add_argument("--out", default="runs/diagnose")
    dg.set_defaults(func=_diagnose)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
