"""Helpers to run the real Snakemake workflow on a tiny config in a temporary folder."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
UNSAFE_UNIT = "<img src=x onerror=alert(2)><script>alert(1)</script>"


def tiny_config(data: Path) -> dict:
    return {
        "results": "results",
        "threads": 1,
        "datasets": {"tiny": {"kind": "matbench", "task": "matbench_dielectric", "path": str(data)}},
        "graphs": {"cutoff": 6.0, "max_neighbors": 8},
        "encoder": {"name": "cgcnn", "width": 16, "layers": 2},
        "augment": {"n_views": 2},
        "fingerprints": {"soap_n_max": 2, "soap_l_max": 2, "soap_groups_n_max": 2, "soap_groups_l_max": 2},  # every kind
        "pretrain": {
            "pool": "tiny",
            "optim": {"epochs": 2, "batch_size": 16, "lr": 0.001},
            "methods": {
                "scratch": {"objective": "scratch"},
                "crystalclr": {"objective": "crystalclr", "params": {"composition_similarity": True}},
                "dssl": {"objective": "dssl", "params": {"micro_property": "stiffness"}},
                "fingerprint": {"objective": "fingerprint", "params": {"descriptor": "wacsf"}},
                "negnn": {"objective": "negnn"},
                "barlow": {"objective": "barlow"},
            },
        },
        "finetune": {
            "optim": {"batch_size": 8, "lrs": [0.001, 0.003], "max_steps": 12, "patience": 6, "warmup_steps": 2},
            "min_val": 4,
            "fractions": [0.5, 1.0],
            "seeds": [0],
            "folds": [0],
        },
        "probes": {"rf_trees": 10, "map_points": 40},
        # the unit is untrusted text that the report must escape
        "properties": {"n": {"dataset": "tiny", "column": "n", "folds": "kfold", "n_folds": 3, "unit": UNSAFE_UNIT}},
    }


def write_config(workdir: Path, cfg: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(copy.deepcopy(cfg)))


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def bench(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Runs bench/SCRIPT with this interpreter in `cwd` (the bench scripts are not a package)."""
    return subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=cwd, capture_output=True, text=True)


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Job counts per rule of a dry run ({} when there is nothing to do)."""
    out = snakemake(workdir, "--dry-run", "--cores", "1", *args)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


TIMING = {"graphs_per_s", "resumed_from_epoch", "epochs_run"}  # measured, not computed: may differ


def without_timing(obj):
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj
