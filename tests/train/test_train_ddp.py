"""DDP through torchrun on the CPU (gloo, 2 processes) against one process with the same global batch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snnres.train import read_checkpoint

# A BatchNorm-free network: with BatchNorm, each process normalises by its own half batch
# (SyncBatchNorm needs CUDA), so only a BN-free run can equal the single-process one exactly.
COMMON = ["train", "--arch", "spiking-cnn", "--model-arg", "norm=false", "--dataset", "synthetic-dvs",
          "--dataset-arg", "num_samples=32", "--dataset-arg", "size=16", "--dataset-arg", "augment=false",
          "--T", "4", "--batch-size", "8",
          "--epochs", "1", "--max-steps-per-epoch", "3", "--lr", "0.1", "--device", "cpu", "--seed", "3"]


def _run(args, nproc: int | None, cwd: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if nproc is None:
        cmd = [sys.executable, "-m", "snnres", *args]
    else:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
        cmd = [torchrun, "--standalone", f"--nproc_per_node={nproc}", "-m", "snnres", *args]
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_stay_in_sync_and_match_one_process(tmp_path):
    _run([*COMMON, "--out", str(tmp_path / "ddp")], nproc=2, cwd=tmp_path)
    _run([*COMMON, "--out", str(tmp_path / "single")], nproc=None, cwd=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("ranks_in_sync") is True and r.get("world_size") == 2 for r in records)
    ddp = read_checkpoint(tmp_path / "ddp" / "last.pt")["model"]
    single = read_checkpoint(tmp_path / "single" / "last.pt")["model"]
    for key in single:
        # Same global batches; only the order of the gradient sums differs (all-reduce vs one batch).
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5)
    assert read_checkpoint(tmp_path / "ddp" / "last.pt")["epoch"] == 1
