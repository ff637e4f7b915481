"""`snnres memory` and ``memory_report`` against what a training step really keeps, and the
``memory`` training option."""

import json

import pytest
import torch
import torch.nn.functional as F

from snnres.cli import main
from snnres.models import create_model
from snnres.train import TrainConfig
from snnres.train.memory_report import heap_bytes, memory_report


def _measured(arch: str, memory: str, batch: int, **kw) -> tuple[int, int | None]:
    """(bytes of the storages autograd saves, bytes the allocator holds after the forward that it
    did not before): two independent counts of what a step at ``batch`` keeps."""
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, T=3, memory=memory, **kw)
    x, y = torch.rand(batch, 3, 32, 32) * 2, torch.arange(batch) % 10
    F.cross_entropy(model(x), y).backward()  # warm-up: kernels compiled, nothing left over
    model.zero_grad(set_to_none=True)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    before = heap_bytes()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(x)
    after = heap_bytes()
    F.cross_entropy(logits, y).backward()
    return sum(storages.values()), None if before is None else after - before


@pytest.mark.parametrize("memory", ["reference", "default", "lean"])
@pytest.mark.parametrize("arch", ["ms-resnet-cifar8", "ds-resnet8"])
def test_report_equals_what_a_step_keeps(arch, memory):
    widths = {"widths": (8, 16, 16)}
    report = memory_report(arch, T=3, size=32, num_classes=10, memory=memory, **widths)
    assert [name for name, _ in report.stages] == ["stem", "stage 1", "stage 2", "stage 3", "head"]
    assert all(b > 0 for _, b in report.stages[:-1])
    saved, kept = _measured(arch, memory, 5, **widths)
    assert report.for_batch(5) == saved  # exact: the same count, at another batch
    if kept is not None:  # the allocator's view also holds the logits and the autograd graph's nodes
        assert kept == pytest.approx(report.for_batch(5), rel=0.03, abs=128 * 1024)


def test_plans_keep_less_in_order():
    per_sample = {m: memory_report("ms-resnet-cifar8", T=3, size=16, num_classes=10, memory=m).per_sample
                  for m in ("reference", "default", "lean")}
    assert per_sample["lean"] < per_sample["default"] < 0.6 * per_sample["reference"]
    report = memory_report("ms-resnet-cifar8", T=3, size=16, num_classes=10)
    budget = report.fixed_bytes + report.for_batch(40)
    assert report.max_batch(budget) == 40 and report.max_batch(budget - 1) == 39


def test_cli_memory(capsys):
    assert main(["memory", "--arch", "ms-resnet-cifar8", "--size", "16", "--T", "2", "--num-classes", "10",
                 "--memory", "default,lean", "--batch", "4", "--budget-gib", "1"]) == 0
    out = capsys.readouterr().out
    for text in ("stage 1", "total", "default: largest batch within 1 GiB", "lean: largest batch"):
        assert text in out
    assert main(["memory", "--arch", "ms-resnet-cifar8", "--memory", "leaner", "--size", "16"]) == 2
    assert "unknown memory mode 'leaner'" in capsys.readouterr().err


def test_train_option(tmp_path):
    with pytest.raises(ValueError, match="memory"):
        TrainConfig.from_dict({"memory": "compact"})
    out = tmp_path / "run"
    assert main(["train", "--arch", "ms-resnet-cifar8", "--dataset", "synthetic-dvs", "--T", "2", "--batch-size", "4",
                 "--epochs", "1", "--max-steps-per-epoch", "2", "--dataset-arg", "num_samples=16", "--dataset-arg",
                 "size=16", "--memory", "lean", "--out", str(out)]) == 0
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["epoch"] == 1
    assert "memory: lean" in (out / "config.yaml").read_text()
