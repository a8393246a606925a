"""Finetuning runs offloaded to a machine without Snakemake (bench/offload.py, bench/offload_queue.py): the runs a
results folder lacks go out as a queue, run in another folder, and come back as runs that Snakemake takes as done,
with the numbers that the run gave here."""

import json
import shutil
import subprocess
import sys

import pytest

from .workflow import bench, planned_jobs, without_timing

pytestmark = pytest.mark.e2e


def test_offloaded_runs_come_back_as_done(workflow_run, tmp_path):
    workdir, _ = workflow_run
    copy, queue, there = tmp_path / "run", tmp_path / "queue", tmp_path / "there"
    shutil.copytree(workdir, copy, symlinks=True)
    gone = sorted((copy / "results" / "finetune").iterdir())[:3]
    before = {d.name: json.loads((d / "metrics.json").read_text()) for d in gone}
    for d in [*gone, copy / "results" / "properties"]:  # (with the summaries there, Snakemake would not look back)
        shutil.rmtree(d)
    assert planned_jobs(copy)["finetune"] == 3
    common = ["--config", str(copy / "config.yaml"), "--parts-dir", str(tmp_path / "parts")]

    out = bench("offload.py", "export", *common, "--properties", "n", "--out", str(queue), cwd=copy)
    assert out.returncode == 0 and out.stdout.startswith("3 runs of n reading "), out.stderr
    assert sorted(line.split("\t")[0] for line in (queue / "jobs.tsv").read_text().splitlines()) == sorted(before)

    there.mkdir()  # another machine: the queue alone, no results folder, no Snakemake
    proc = subprocess.run([sys.executable, str(queue / "offload_queue.py"), "--queue", str(queue), "--workers", "2",
                           "--gpus", "0", "--out", str(there), "--chunk-mb", "0.02"],
                          cwd=there, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ran = json.loads((there / "queue.json").read_text())
    assert ran["finished"] == 3 and ran["failed"] == [] and ran["models_left_out"] == 0
    assert len(list(there.glob("runs.tar.*"))) > 1  # cut into archives of the size asked for

    out = bench("offload.py", "import", *common, "--archives", str(there), cwd=copy)
    assert out.returncode == 0 and out.stdout.strip() == "imported 3 finished runs", out.stdout + out.stderr
    for name, metrics in before.items():
        back = json.loads((copy / "results" / "finetune" / name / "metrics.json").read_text())
        assert without_timing(back) == without_timing(metrics)
    assert "finetune" not in planned_jobs(copy)  # done; the property summary and the report are made again
    again = bench("offload.py", "export", *common, "--properties", "n", "--out", str(tmp_path / "q2"), cwd=copy)
    assert again.returncode != 0 and "nothing to export" in again.stderr
