"""The tiny workflow through a real one-node SLURM cluster on localhost, with a profile derived from
`slurm/config.yaml`. Skipped where SLURM is not installed, unless MATSSL_REQUIRE_SLURM is set (CI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .workflow import BIN, ROOT, tiny_config, write_config

pytestmark = pytest.mark.e2e
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(t) is None]
    if missing:
        if os.environ.get("MATSSL_REQUIRE_SLURM"):
            pytest.fail(f"SLURM is required here (MATSSL_REQUIRE_SLURM is set) but {missing} are missing")
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing: apt-get install slurm-wlm munge)")
    state = tmp_path_factory.mktemp("slurm")
    out = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    yield state / "slurm.conf"
    subprocess.run(["bash", str(CLUSTER), "stop", str(state)], check=False)


def slurm_test_profile(tmp_path: Path) -> dict:
    """The repository's profile, with what a GPU-less one-node test cluster needs changed."""
    profile = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    profile["jobs"] = 4
    profile["latency-wait"] = 5
    profile["slurm-init-seconds-before-status-checks"] = 1
    profile["slurm-logdir"] = str(tmp_path / "slurm-logs")
    profile["slurm-keep-successful-logs"] = True
    profile["default-resources"].update(mem_mb=1000, runtime=30)
    for rule in profile["set-resources"]:
        profile["set-resources"][rule].update(gpu=0, cpus_per_task=1, mem_mb=2000, runtime=30)
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}  # equal to cpus_per_task, as in the profile
    profile["set-resources"]["finetune"]["cpus_per_task"] = profile["set-threads"]["finetune"] = 2  # the node has 2
    profile["cores"], profile["resources"] = 2, ["gpu=1", "cpus_per_task=2", "mem_mb=4000"]  # what one SLURM job may hold
    return profile


def test_workflow_runs_through_sbatch(slurm_cluster, tmp_path, tiny_demo):
    workdir = tmp_path / "run"
    (workdir / "slurm").mkdir(parents=True)
    (workdir / "slurm" / "config.yaml").write_text(yaml.safe_dump(slurm_test_profile(tmp_path)))
    cfg = tiny_config(tiny_demo)
    cfg["pretrain"]["methods"] = {k: v for k, v in cfg["pretrain"]["methods"].items() if k in ("scratch", "crystalclr")}
    write_config(workdir, cfg)
    env = {**os.environ, "SLURM_CONF": str(slurm_cluster), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--profile", "slurm", "all"]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1200)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert (workdir / "results" / "report.html").exists()
    submitted = set(re.findall(r"SLURM (?:run )?ID:? ?'?(\d+)", log)) | set(re.findall(r"jobid (\d+)", log))
    manifests = [json.loads(p.read_text()) for p in (workdir / "results").glob("*/*/manifest.json")]
    job_ids = {m["slurm_job_id"] for m in manifests}
    # every cached stage ran inside a SLURM job, and those jobs are the ones the plugin submitted; finetuning runs
    # are batched (the profile's job groups): fewer SLURM jobs than runs
    assert None not in job_ids
    finetune_jobs = [m["slurm_job_id"] for m in manifests if m["kind"] == "finetune"]
    assert len(set(finetune_jobs)) < len(finetune_jobs), finetune_jobs
    others = [m["slurm_job_id"] for m in manifests if m["kind"] != "finetune"]
    assert len(set(others)) == len(others) and not set(others) & set(finetune_jobs)
    # training jobs use the threads the profile gives them (its set-threads), not the config's `threads: 1`
    assert {m["runtime"]["threads"] for m in manifests if m["kind"] == "finetune"} == {2}
    assert {m["runtime"]["threads"] for m in manifests if m["kind"] == "pretrain"} == {1}
    logs = list((tmp_path / "slurm-logs").rglob("*.log"))
    assert logs, "the executor plugin wrote no SLURM job logs"
    ids_in_logs = {re.search(r"(\d+)\.log$", p.name).group(1) for p in logs if re.search(r"(\d+)\.log$", p.name)}
    assert job_ids <= ids_in_logs | submitted, (job_ids, ids_in_logs, submitted)
