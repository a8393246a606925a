"""A training job killed after a checkpoint resumes from it, and ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from matssl.stages import Plan
from matssl.validate import parse_config

from .workflow import BIN, without_timing

pytestmark = pytest.mark.e2e


def stage_command(spec: dict, out: str) -> list[str]:
    return [str(BIN / "matssl"), "stage", spec["kind"], "--spec", json.dumps(spec), "--out", out]


def run_killed_then_resumed(workdir, spec: dict, out: str, kill_after_epoch: int, tag: str = "") -> dict:
    """Kill the job once its checkpoint (of the run named `tag`) is past `kill_after_epoch`, then run it again."""
    proc = subprocess.Popen(stage_command(spec, out), cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = workdir / out / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline:
        if ckpt.exists():
            try:
                saved = torch.load(ckpt, weights_only=True)
                epoch = saved["epoch"] if saved["tag"] == tag else 0
            except Exception:  # being replaced right now: the rename is atomic, so try again
                epoch = 0
            if epoch >= kill_after_epoch:
                break
        if proc.poll() is not None:
            pytest.fail("the job ended before it could be killed: " + proc.stderr.read().decode()[-2000:])
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (workdir / out / "manifest.json").exists()  # a killed job never looks finished
    subprocess.run(stage_command(spec, out), cwd=workdir, check=True, capture_output=True)
    return json.loads((workdir / out / "manifest.json").read_text())


@pytest.mark.parametrize("method", ["crystalclr", "dssl"])
def test_pretrain_resumes_from_checkpoint(workflow_run, method, device):
    workdir, cfg = workflow_run
    cfg = json.loads(json.dumps(cfg))
    cfg["pretrain"]["optim"]["epochs"] = 300  # long enough to outlast the first checkpoint (at most one a second)
    cfg["pretrain"]["device"] = device.type
    stage = Plan(parse_config(cfg)).pretrain[method][0]
    spec = stage.spec()
    killed = f"{stage.dir}-{device.type}-killed"
    manifest = run_killed_then_resumed(workdir, spec, killed, kill_after_epoch=5)
    assert manifest["device"].startswith(device.type)
    assert manifest["resumed_from_epoch"] >= 5 and manifest["epochs_run"] == 300 - manifest["resumed_from_epoch"]
    history = json.loads((workdir / killed / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 301))
    if device.type == "cuda":
        return  # a GPU's index_add_ sums in no fixed order: two runs agree within rounding, not bit for bit
    subprocess.run(stage_command(spec, stage.dir + "-straight"), cwd=workdir, check=True, capture_output=True)
    a = torch.load(workdir / killed / "encoder.pt", weights_only=True)["state_dict"]
    b = torch.load(workdir / (stage.dir + "-straight") / "encoder.pt", weights_only=True)["state_dict"]
    for k in b:  # same seed on the CPU: identical to an uninterrupted run, bit for bit
        assert torch.equal(a[k], b[k]), k


def test_finetune_resumes_from_checkpoint(workflow_run):
    """Killed in the second learning rate of the grid: the first one's result and the best weights so far come
    back from the checkpoint. On the CPU, where a resumed run equals a straight one bit for bit (the pretraining
    test above also resumes on a GPU)."""
    workdir, cfg = workflow_run
    cfg = json.loads(json.dumps(cfg))
    cfg["finetune"]["optim"].update(max_steps=1500, patience=1500, lrs=[0.001, 0.003])
    cfg["finetune"]["device"] = "cpu"
    cfg["finetune"]["small_data"] = {"below": 0}  # the validation split's protocol, which checkpoints (cv runs are short)
    stage = next(
        s for s in Plan(parse_config(cfg)).finetune["n"] if s.params["method"] == "crystalclr" and s.params["fraction"] == 1.0
    )
    spec = stage.spec()
    manifest = run_killed_then_resumed(workdir, spec, stage.dir + "-killed", kill_after_epoch=5, tag="lr1")
    assert manifest["resumed_from_epoch"] >= 5
    subprocess.run(stage_command(spec, stage.dir + "-straight"), cwd=workdir, check=True, capture_output=True)
    m1 = json.loads((workdir / (stage.dir + "-killed") / "metrics.json").read_text())
    m2 = json.loads((workdir / (stage.dir + "-straight") / "metrics.json").read_text())
    assert m1["grid"][0]["resumed_from_epoch"] is None and m1["grid"][1]["resumed_from_epoch"] >= 5
    assert m1["mae"] == m2["mae"] and without_timing(m1["grid"]) == without_timing(m2["grid"])
