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


def _recipes(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .train.recipes import PAPER_RECIPES

    console = Console()
    table = Table("recipe", "arch", "data set", "T", "published", title="the papers' recipes: snnres train --recipe NAME")
    for name, recipe in PAPER_RECIPES.items():
        o = recipe["options"]
        table.add_row(name, o["arch"], o["dataset"], str(o["T"]), recipe["result"])
    console.print(table)
    for name, recipe in PAPER_RECIPES.items():
        console.print(f"{name}: {recipe['notes']}", markup=False)
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
    "--dataset": (str, "data set (synthetic-dvs is built in)"),
    "--data-dir": (str, "data root"),
    "--epochs": (int, "epochs"),
    "--batch-size": (int, "global batch size (split over DDP processes)"),
    "--T": (int, "time steps (default: the data set's, or 4)"),
    "--lr": (float, "peak learning rate (cosine schedule)"),
    "--optimizer": (str, "sgd or adamw"),
    "--momentum": (float, "SGD momentum"),
    "--weight-decay": (float, "weight decay (on conv/linear weights only, unless --weight-decay-on all)"),
    "--weight-decay-on": (str, "weights (default) or all: every parameter, as the papers' code"),
    "--lr-schedule": (str, "cosine (per step, default), cosine-epoch or step (per epoch, the papers')"),
    "--recipe": (str, "a paper's recipe, e.g. ms-resnet18-imagenet (snnres recipes lists them)"),
    "--label-smoothing": (float, "label smoothing"),
    "--warmup-epochs": (float, "linear warm-up epochs"),
    "--amp-dtype": (str, "bf16 or fp16 with --amp"),
    "--workers": (int, "data loader workers"),
    "--seed": (int, "random seed"),
    "--out": (str, "run folder (config, logs, last.pt, best.pt); with --resume: the checkpoint's folder"),
    "--resume": (str, "continue exactly from this last.pt"),
    "--init-from": (str, "start from this checkpoint's weights, e.g. snnres pretrain's last.pt (new head)"),
    "--device": (str, "auto, cpu, cuda or cuda:N"),
    "--max-steps-per-epoch": (int, "cap on steps per epoch (smoke runs)"),
    "--save-every": (int, "also write last.pt every N steps, so that a crash loses at most N steps"),
    "--on-nonfinite": (str, "stop or skip: what a step whose loss or gradients are NaN/inf does"),
    "--spike-table": (str, "stages or layers: rows of the final spike table"),
    "--memory": (str, "default, lean or reference: what the backward keeps (snnres memory shows the bytes)"),
}
TRAIN_SWITCHES = {"--amp": "mixed precision on CUDA", "--compile": "torch.compile the model",
                  "--sync-bn": "SyncBatchNorm under DDP (CUDA)", "--download": "download the data set if missing"}
#: Flags of the commands that run a checkpoint on its data set (eval, energy-report).
CHECKPOINT_DATA_FLAGS = {
    "--dataset": dict(help="data set (default: the one it was trained on, test split, no augmentation)"),
    "--data-dir": dict(help="data root (default: the training run's)"),
    "--batch-size": dict(type=int, help="batch size (default: the training run's)"),
    "--T": dict(type=int, help="time steps (default: the checkpoint's)"),
    "--max-batches": dict(type=int, help="stop after this many batches (default: all)"),
    "--device": dict(default="auto", help="auto, cpu, cuda or cuda:N"),
}


def _train_defaults() -> dict[str, str]:
    """What each train flag defaults to, for --help: TrainConfig's value, and the recipes' where they set it."""
    from dataclasses import fields

    from .train.config import RECIPES, TrainConfig

    shown = {}
    for f in fields(TrainConfig):
        recipe = RECIPES.get(TrainConfig.dataset, {})
        value = recipe.get(f.name, f.default)
        note = f"{value!r}" if not isinstance(value, str) else value
        if any(f.name in r for r in RECIPES.values()):
            note += f" ({TrainConfig.dataset}'s recipe; each data set's recipe sets its own)" \
                if f.name in recipe else " (or the data set's recipe)"
        shown[f.name] = note
    return shown


def _overrides(args: argparse.Namespace) -> tuple[dict, set[str]]:
    """A run command's flags as config overrides (None = not given), and the names the user set."""
    overrides = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config", "model_arg", "dataset_arg")}
    if args.model_arg:
        overrides["model_kwargs"] = _key_values(args.model_arg)
    if args.dataset_arg:
        overrides["dataset_kwargs"] = _key_values(args.dataset_arg)
    return overrides, {k for k, v in overrides.items() if v is not None}


def _train(args: argparse.Namespace) -> int:
    from .train import build_config, train

    overrides, explicit = _overrides(args)
    train(build_config(overrides, args.config), explicit)
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model (default: ms-resnet18 on synthetic-dvs, CPU-sized)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Flags override --config, which overrides the data set's recipe "
                                   "(snnres/train/config.py).")
    p.add_argument("--config", help="YAML file of options; flags override it")
    defaults = _train_defaults()
    for flag, (kind, text) in TRAIN_FLAGS.items():
        field = flag[2:].replace("-", "_")
        shown = "" if "default:" in text else f" (default: {defaults.get(field, 'None')})"
        p.add_argument(flag, type=kind, default=None, help=text + shown)
    for flag, text in TRAIN_SWITCHES.items():
        p.add_argument(flag, action="store_true", default=None, help=f"{text} (default: off)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="extra create_model argument")
    p.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE",
                   help="extra make_dataset argument (merged key by key with the recipe's)")
    p.set_defaults(func=_train)


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

    overrides, explicit = _overrides(args)
    pretrain(build_pretrain_config(overrides, args.config), explicit)
    return 0


def _add_pretrain(sub) -> None:
    pre = sub.add_parser("pretrain", help="masked image pre-training of a ViT: MIRL or MAE (CPU-sized default)")
    pre.add_argument("--config", help="YAML file of options; flags override it")
    for flag, (kind, text) in PRETRAIN_FLAGS.items():
        pre.add_argument(flag, type=kind, default=None, help=text)
    pre.add_argument("--cross-attention", action=argparse.BooleanOptionalAction, default=None,
                     help="decoders attend to the shallower segments (default: on for MIRL, off for MAE)")
    pre.add_argument("--pred-weight-norm", action=argparse.BooleanOptionalAction, default=None,
                     help="weight-normalised prediction layer, gain fixed at 1 (the authors' MIRL configs; default off)")
    pre.add_argument("--norm-pix-loss", action=argparse.BooleanOptionalAction, default=None,
                     help="per-patch normalised target (default on)")
    pre.add_argument("--download", action="store_true", default=None, help="download the data set if missing")
    pre.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                     help="create_model argument (depth, embed_dim, num_heads, patch_size, ...)")
    pre.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE", help="extra make_dataset argument")
    pre.set_defaults(func=_pretrain)


def _add_checkpoint_data_flags(parser) -> None:
    parser.add_argument("checkpoint")
    for flag, options in CHECKPOINT_DATA_FLAGS.items():
        parser.add_argument(flag, **options)


def _checkpoint_loader(args):
    """(checkpoint, loader) for the commands that run a checkpoint on its data set (never augmented)."""
    from .train import open_trained

    trained = open_trained(args.checkpoint)
    loader = trained.loader(args.batch_size, name=args.dataset, data_dir=args.data_dir, T=args.T)
    return trained, loader


def _eval(args: argparse.Namespace) -> int:
    from .train import evaluate
    from .train.run import resolve_device

    trained, loader = _checkpoint_loader(args)
    device = resolve_device(args.device)
    result = evaluate(trained.model.to(device), loader, device, max_batches=args.max_batches)
    name = args.dataset or trained.dataset_name
    print(f"{args.checkpoint} on {name} ({result.samples} samples): "
          f"top-1 {result.top1:.4f}  top-5 {result.top5:.4f}  loss {result.loss:.4f}")
    if args.json:
        import json

        from .files import write_text

        record = {"checkpoint": str(args.checkpoint), "dataset": name, "samples": result.samples,
                  "top1": result.top1, "top5": result.top5, "loss": result.loss}
        print(f"wrote {write_text(args.json, json.dumps(record, indent=2))}")
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="top-1/top-5 and loss of a checkpoint on its test split",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_checkpoint_data_flags(p)
    p.add_argument("--json", help="write top-1, top-5 and loss as JSON here")
    p.set_defaults(func=_eval)


def _energy_report(args: argparse.Namespace) -> int:
    from .energy import energy_model

    trained, loader = _checkpoint_loader(args)
    constants = energy_model(args.preset, args.e_ac, args.e_mac)
    if args.event_driven:
        return _event_driven_energy(args, trained, loader, constants)
    return _dense_energy(args, trained, loader, constants)


def _event_driven_energy(args, trained, loader, constants) -> int:
    import torch

    from .neurons.backends import unavailable_reason
    from .sim.loader_counts import event_driven_report
    from .train.run import resolve_device

    device = resolve_device(args.device)  # the GPU simulator where CuPy can run, else the CPU one
    if device.type == "cuda" and args.device == "auto" and unavailable_reason("cupy", device) is not None:
        device = torch.device("cpu")
    report = event_driven_report(trained.model, loader, trained.T, args.max_batches, constants, device)
    return _print_energy(args, trained, report, "event-driven, ")


def _dense_energy(args, trained, loader, constants) -> int:
    from .energy import energy_report
    from .train.run import resolve_device

    device = resolve_device(args.device)
    return _print_energy(args, trained, energy_report(trained.model.to(device), loader, args.max_batches, constants,
                                                      device))


def _print_energy(args, trained, report, how: str = "") -> int:
    from rich.console import Console
    from rich.table import Table

    from .train.monitor import add_name_column

    console = Console()
    rows = report.layers if args.layers else _energy_rows_per_stage(report.layers)
    table = Table(title=f"{trained.info['model_args']['arch']} on {args.dataset or trained.dataset_name}, {how}"
                        f"{report.samples} samples, per sample" + ("" if args.layers else " (per stage: --layers for every layer)"))
    add_name_column(table, "layer" if args.layers else "stage", [r["name"] for r in rows])
    updates = "neuron_updates" in report.total
    for header in ("kind", "neurons", "spikes/neuron", "firing rate", "SOPs", "MACs") + (("updates",) if updates else ()):
        table.add_column(header, justify="right", overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["kind"], str(r["neurons"] or ""),
                      "" if r["spikes_per_neuron"] is None else f"{r['spikes_per_neuron']:.3f}",
                      "" if r["firing_rate"] is None else f"{r['firing_rate']:.4f}",
                      f"{r['sops']:.3g}" if r["sops"] else "", f"{r['macs']:.3g}" if r["macs"] else "",
                      *((f"{r['neuron_updates']:.3g}" if r.get("neuron_updates") else "",) if updates else ()))
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


def _energy_rows_per_stage(layers: list[dict]) -> list[dict]:
    """The report's rows summed per (stage, kind): neurons, spikes, SOPs and MACs add up."""
    from .train.monitor import stage_of

    groups: dict[tuple[str, str], dict] = {}
    for r in layers:
        g = groups.setdefault((stage_of(r["name"]), r["kind"]), {"name": stage_of(r["name"]), "kind": r["kind"],
                                                                  "neurons": 0, "spikes": 0.0, "sops": 0.0,
                                                                  "macs": 0.0, "rate_weight": 0.0,
                                                                  "neuron_updates": 0.0})
        g["neurons"] += r["neurons"] or 0
        g["spikes"] += r["spikes"] or 0.0
        g["sops"] += r["sops"] or 0.0
        g["macs"] += r["macs"] or 0.0
        g["neuron_updates"] += r.get("neuron_updates") or 0.0
        g["rate_weight"] += (r["firing_rate"] or 0.0) * (r["neurons"] or 0)
    rows = []
    for g in groups.values():
        neurons = g["neurons"]
        rows.append({**g, "spikes_per_neuron": g["spikes"] / neurons if neurons else None,
                     "firing_rate": g["rate_weight"] / neurons if neurons else None})
    return rows


def _add_energy_report(sub) -> None:
    p = sub.add_parser("energy-report", help="spikes per neuron, SOPs, MACs and energy vs the ANN",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_checkpoint_data_flags(p)
    p.add_argument("--preset", default="45nm-fp32", help="energy constants: 45nm-fp32, 45nm-fp16, 45nm-int32, 45nm-int8")
    p.add_argument("--e-ac", type=float, help="pJ per accumulate (overrides the preset)")
    p.add_argument("--e-mac", type=float, help="pJ per multiply-accumulate (overrides the preset)")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--plot", help="write the report's figure (PNG) here")
    p.add_argument("--layers", action="store_true", help="one row per layer instead of per stage")
    p.add_argument("--event-driven", action="store_true",
                   help="count with the event-driven simulator (exact per-event SOPs and neuron updates)")
    p.set_defaults(func=_energy_report)


def _export(args: argparse.Namespace) -> int:
    from .export.cli import export_command

    return export_command(args.checkpoint, args.format, args.output, args.dt, args.allow_lossy, args.input_shape)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint for neuromorphic hardware (NIR)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--format", default="nir", help="output format (nir)")
    p.add_argument("-o", "--output", required=True, help="file to write, e.g. model.nir")
    p.add_argument("--dt", type=float, default=1e-4, help="NIR time step in seconds")
    p.add_argument("--allow-lossy", action="store_true", help="export soft reset as hard reset, with a warning")
    p.add_argument("--input-shape", type=int, nargs="+", metavar="N",
                   help="one sample at one step, e.g. 2 32 32 (default: recorded in the checkpoint)")
    p.set_defaults(func=_export)


def _simulate(args: argparse.Namespace) -> int:
    from .sim.cli import simulate_command

    sensor = tuple(args.sensor_size) if args.sensor_size else None
    return simulate_command(args.checkpoint, args.events, args.T, sensor, args.device, sample=args.sample,
                            split=args.split, strategy=args.strategy, explain=args.explain)


def _add_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="run a checkpoint event by event on one recording, with exact counts",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", help=".npy of Tonic structured events (x, y, p, t)")
    source.add_argument("--sample", type=int, metavar="N", help="recording N of the checkpoint's data set")
    p.add_argument("--split", choices=("test", "train"), default="test", help="the split --sample reads")
    p.add_argument("--T", type=int, help="time bins (default: the checkpoint's T)")
    p.add_argument("--sensor-size", type=int, nargs=3, metavar=("W", "H", "P"),
                   help="sensor size (default: recorded in the checkpoint)")
    p.add_argument("--device", default="cpu", help="cpu (numba kernels) or cuda[:N] (CuPy kernels)")
    p.add_argument("--strategy", default="fast", choices=("fast", "reference"),
                   help="fast: the planned kernels; reference: plain numpy, the oracle (CPU only)")
    p.add_argument("--explain", action="store_true",
                   help="also print the plan: the kernel each layer ran, why, and the numbers that chose it")
    p.set_defaults(func=_simulate)


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


def _memory(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .train.memory_report import memory_report

    plans = args.memory.split(",")
    reports = [memory_report(args.arch, T=args.T, size=args.size, in_channels=args.in_channels,
                             num_classes=args.num_classes, memory=plan, frames=args.frames, optimizer=args.optimizer,
                             **_key_values(args.model_arg)) for plan in plans]
    mib, gib = 2 ** 20, 2 ** 30
    first = reports[0]
    shape = "x".join(map(str, first.input_shape))
    table = Table("part", *[f"{r.memory}: MiB/sample" for r in reports],
                  *([f"{r.memory}: GiB at batch {args.batch}" for r in reports] if args.batch else []),
                  title=f"{args.arch}, T={args.T}, input {shape}, fp32: kept for the backward (measured)")
    for i, (part, _) in enumerate(first.stages):
        table.add_row(part, *[f"{r.stages[i][1] / mib:.2f}" for r in reports],
                      *([f"{r.stages[i][1] * args.batch / gib:.3f}" for r in reports] if args.batch else []))
    table.add_row("total", *[f"{r.per_sample / mib:.2f}" for r in reports],
                  *([f"{r.for_batch(args.batch) / gib:.3f}" for r in reports] if args.batch else []), style="bold")
    console = Console()
    console.print(table)
    console.print(f"fixed: parameters, gradients and {args.optimizer} state {first.fixed_bytes / mib:.1f} MiB "
                  f"({first.parameter_bytes / mib:.1f} MiB of parameters)", markup=False)
    if args.budget_gib:
        for r in reports:
            console.print(f"{r.memory}: largest batch within {args.budget_gib:g} GiB: "
                          f"{r.max_batch(args.budget_gib * gib)}", markup=False)
    console.print("The backward adds a few activation-sized temporaries; mixed precision halves most activations.",
                  markup=False)
    return 0


def _add_memory(sub) -> None:
    p = sub.add_parser("memory", help="what a training configuration keeps for the backward, per stage and sample",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", default="ms-resnet18", help="architecture (snnres models lists them)")
    p.add_argument("--T", type=int, default=4, help="time steps")
    p.add_argument("--size", type=int, default=224, help="input height and width")
    p.add_argument("--in-channels", type=int, default=3, help="input channels")
    p.add_argument("--num-classes", type=int, default=1000, help="classes")
    p.add_argument("--frames", action="store_true", help="T event frames per sample, not a static image")
    p.add_argument("--memory", default="default,lean", help="memory plans to compare: default, lean, reference")
    p.add_argument("--batch", type=int, help="also show the totals at this batch size")
    p.add_argument("--budget-gib", type=float, help="print the largest batch that fits in this many GiB")
    p.add_argument("--optimizer", default="sgd", help="sgd or adamw (its state is part of the fixed bytes)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="extra model argument (repeatable)")
    p.set_defaults(func=_memory)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run a LIF layer through every available backend",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--T", type=int, default=8, help="time steps")
    p.add_argument("--neurons", type=int, default=2**16, help="neurons in the layer")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats")
    p.set_defaults(func=_demo)


def _add_backends(sub) -> None:
    sub.add_parser("backends", help="which neuron backends can run here, and why not").set_defaults(func=_backends)


def _add_models(sub) -> None:
    sub.add_parser("models", help="list the registered architectures").set_defaults(func=_models)


def _add_recipes(sub) -> None:
    sub.add_parser("recipes", help="list the papers' training recipes").set_defaults(func=_recipes)


def _convert(args: argparse.Namespace) -> int:
    from .convert.cli import convert_command

    return convert_command(args.checkpoint, args.source_format, args.output, args.T, args.dataset,
                           _key_values(args.dataset_arg))


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="an authors' released checkpoint as an snnres checkpoint")
    p.add_argument("checkpoint", help="the .pth file their training script saved")
    p.add_argument("--from", dest="source_format", required=True,
                   choices=["official-ms-resnet", "official-mlf", "official-sew"],
                   help="whose code saved it: Ariande1/MS-ResNet, langfengQ/MLF-DSResNet, "
                        "fangwei123456/Spike-Element-Wise-ResNet")
    p.add_argument("-o", "--output", required=True, help="snnres checkpoint to write")
    p.add_argument("--T", type=int, help="time steps (default: the paper's for that network)")
    p.add_argument("--dataset", help="data set eval & co. default to (default: the one it was trained on)")
    p.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE",
                   help="stored data set option, e.g. image_size=288 resize=320 (MS-ResNet-104's large test crop)")
    p.set_defaults(func=_convert)


def _add_sweep_depth(sub) -> None:
    sw = sub.add_parser("sweep-depth", help="the degradation study: accuracy and loss vs depth per family",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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


def _add_diagnose(sub) -> None:
    dg = sub.add_parser("diagnose", help="per-block gradient norm and firing rate through depth",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    dg.add_argument("--arch", required=True)
    dg.add_argument("--steps", type=int, default=3, help="training steps before the second profile")
    dg.add_argument("--batch-size", type=int, default=1)
    dg.add_argument("--T", type=int, default=2)
    dg.add_argument("--size", type=int, default=16, help="input height and width")
    dg.add_argument("--model-arg", action="append", metavar="KEY=VALUE")
    dg.add_argument("--out", default="runs/diagnose")
    dg.set_defaults(func=_diagnose)


#: Every subcommand's parser builder, in the order ``snnres --help`` lists them: one line each.
COMMANDS = [_add_demo, _add_backends, _add_models, _add_recipes, _add_train, _add_pretrain, _add_eval, _add_energy_report,
            _add_export, _add_simulate, _add_convert, _add_sweep_depth, _add_diagnose,
            _add_memory]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snnres", description="Deep residual spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


#: The exit status of every user error (bad option, missing file, unusable checkpoint, full disk).
USER_ERROR = 2
INTERRUPTED = 130


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix: printed as one message, never as a traceback."""
    from .data import CorruptFileError, DatasetNotFoundError, DownloadError, MissingPackageError
    from .files import WriteError
    from .train import CheckpointError, TrainingDiverged

    errors = [CheckpointError, TrainingDiverged, DatasetNotFoundError, DownloadError, CorruptFileError,
              MissingPackageError, WriteError, FileNotFoundError, PermissionError, ValueError, TypeError, ImportError]
    try:
        from .export.errors import ExportError
        from .sim.graph import UnsupportedLayerError

        errors += [ExportError, UnsupportedLayerError]
    except ImportError:
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt as interrupt:
        print(f"snnres {args.command}: {interrupt or 'interrupted'}", file=sys.stderr)
        return INTERRUPTED
    except user_errors() as error:
        message = str(error) or type(error).__name__
        print(f"snnres {args.command}: {message}", file=sys.stderr)
        return USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
