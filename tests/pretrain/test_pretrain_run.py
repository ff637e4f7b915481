"""`snnres pretrain` end to end: run folder, exact resume after real signals, fine-tuning, errors."""

import json
import os
import signal

import pytest
import torch

from snnres.cli import main
from snnres.pretrain import MaskedImageModel, PretrainConfig, pretrain
from snnres.train import read_checkpoint
from snnres.train.checkpoint import build_model

# 8x8 digits, 2x2 patches (16 patches); drop_path makes the run draw from the global random state,
# so resume must restore it too.
MODEL = {"depth": 4, "embed_dim": 32, "num_heads": 2, "patch_size": 2, "drop_path_rate": 0.1}


def tiny(out, method="mirl", epochs=2, **kw) -> PretrainConfig:
    return PretrainConfig(method=method, arch="vit-small-deep", dataset="digits", epochs=epochs, batch_size=16,
                          lr=2e-3, warmup_epochs=0.5, max_steps_per_epoch=4, out=str(out), device="cpu",
                          model_kwargs=dict(MODEL), dataset_kwargs={"size": 8}, **kw)


def weights(path):
    state = read_checkpoint(path)
    return {**state["model"], **state["pretrain"]["heads"]}, state


def signal_at_step(monkeypatch, n: int, sig=signal.SIGTERM):
    """Send ``sig`` to this process during the n-th training forward pass (a real signal, mid-step)."""
    calls = []
    real = MaskedImageModel.forward

    def forward(self, images, generator=None):
        if self.training:
            calls.append(1)
            if len(calls) == n:
                os.kill(os.getpid(), sig)
        return real(self, images, generator)

    monkeypatch.setattr(MaskedImageModel, "forward", forward)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("stop_step, sig", [(6, signal.SIGTERM), (4, signal.SIGINT)])
def test_resume_after_a_signal_is_exact(tmp_path, monkeypatch, stop_step, sig):
    pretrain(tiny(tmp_path / "straight"))
    straight, _ = weights(tmp_path / "straight" / "last.pt")

    # stop_step 6: the signal arrives in epoch 2's 2nd step (mid-epoch); 4: in epoch 1's last step
    signal_at_step(monkeypatch, stop_step, sig)
    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny(tmp_path / "split"))
    monkeypatch.undo()
    _, saved = weights(tmp_path / "split" / "last.pt")
    assert (saved["epoch"], saved["step"]) == ((1, 2) if stop_step == 6 else (1, 0))
    pretrain(tiny(tmp_path / "split", resume=str(tmp_path / "split" / "last.pt")), explicit={"resume"})
    resumed, _ = weights(tmp_path / "split" / "last.pt")
    assert_same_weights(straight, resumed)
    logs = [(tmp_path / run / "log.jsonl").read_text().splitlines() for run in ("straight", "split")]
    assert [json.loads(r)["epoch"] for r in logs[1]] == [1, 2]  # one record per epoch
    record = json.loads(logs[0][-1])
    assert {"val_seg1+seg4", "val_seg2+seg3", "val_seg1_alone", "val_seg4_alone"} <= record.keys()
    assert [json.loads(r) | {"images_per_s": 0} for r in logs[0]] == \
           [json.loads(r) | {"images_per_s": 0} for r in logs[1]]


def test_run_folder_checkpoint_and_fine_tuning(tmp_path, capsys):
    out = tmp_path / "mae"
    args = ["pretrain", "--method", "mae", "--arch", "vit-small-deep", "--dataset", "digits", "--epochs", "1",
            "--batch-size", "16", "--max-steps-per-epoch", "3", "--dataset-arg", "size=8", "--out", str(out)]
    for key, value in MODEL.items():
        args += ["--model-arg", f"{key}={value}"]
    assert main(args) == 0
    for name in ("config.yaml", "log.jsonl", "last.pt"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    record = json.loads((out / "log.jsonl").read_text())
    assert record["epoch"] == 1 and record["val_loss"] > 0
    state = read_checkpoint(out / "last.pt")
    assert state["model_args"]["kwargs"]["img_size"] == 8 and state["pretrain"]["method"] == "mae"
    encoder = build_model(state["model_args"])
    encoder.load_state_dict(state["model"])  # the encoder is the classifier's own layout

    # fine-tune: the architecture and its arguments come from the checkpoint; every encoder tensor loads
    tuned = tmp_path / "tuned"
    assert main(["train", "--init-from", str(out / "last.pt"), "--dataset", "digits", "--dataset-arg", "size=8",
                 "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size", "16", "--out", str(tuned)]) == 0
    assert "initialised from" in capsys.readouterr().out
    after = read_checkpoint(tuned / "last.pt")
    assert after["model_args"]["arch"] == "vit-small-deep"
    assert main(["train", "--init-from", str(out / "last.pt"), "--arch", "vit-tiny", "--out", str(tmp_path / "no")]) == 2
    assert "holds a vit-small-deep but --arch vit-tiny" in capsys.readouterr().err
    assert after["model_args"]["kwargs"]["depth"] == 4
    # the pre-trained weights were the starting point: blocks moved only by two small steps
    start, end = state["model"]["net.blocks.3.mlp.fc2.weight"], after["model"]["net.blocks.3.mlp.fc2.weight"]
    fresh = build_model(state["model_args"]).state_dict()["net.blocks.3.mlp.fc2.weight"]
    assert (end - start).abs().max() < (end - fresh).abs().max()


def test_fine_tuning_keeps_a_new_head_for_other_classes(tmp_path):
    from snnres.train.checkpoint import load_initial_weights

    pretrain(tiny(tmp_path / "pre", epochs=1))
    state = read_checkpoint(tmp_path / "pre" / "last.pt")
    args = {**state["model_args"], "num_classes": 3}
    model = build_model(args)
    head_before = model.net.head.weight.clone()
    skipped = load_initial_weights(model, state["model"], "pre", args["arch"])
    assert skipped == ["net.head.weight", "net.head.bias"]
    assert torch.equal(model.net.head.weight, head_before)
    assert torch.equal(model.net.blocks[0].attn.qkv.weight, state["model"]["net.blocks.0.attn.qkv.weight"])


def test_user_errors_are_messages(tmp_path, capsys):
    base = ["pretrain", "--dataset", "digits", "--epochs", "1", "--max-steps-per-epoch", "1", "--out",
            str(tmp_path / "x")]
    assert main(base + ["--arch", "resnet18"]) == 2
    assert "needs a ViT, and resnet18 is" in capsys.readouterr().err
    assert main(base + ["--mask-ratio", "1.2"]) == 2
    assert "strictly between 0 and 1" in capsys.readouterr().err
    assert main(base + ["--model-arg", "patch_size=3"]) == 2
    assert "img_size 16 is not divisible by patch_size 3" in capsys.readouterr().err
    assert main(base + ["--method", "bert"]) == 2
    assert "unknown pre-training method" in capsys.readouterr().err
    # resuming a classification run with pretrain
    run = tmp_path / "cls"
    assert main(["train", "--arch", "vit-tiny", "--model-arg", "img_size=16", "--model-arg", "patch_size=4",
                 "--model-arg", "depth=1", "--dataset", "digits", "--epochs", "1", "--max-steps-per-epoch", "1",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(base + ["--resume", str(run / "last.pt")]) == 2
    assert "written by snnres train" in capsys.readouterr().err
    assert not (tmp_path / "x" / "last.pt").exists()
