"""Every stage kind, killed (SIGKILL) while writing its outputs, then re-run: the result is complete
and identical, bit for bit, to an uninterrupted run with the same seed (on the CPU)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from matssl.stages import OUTPUTS, Plan, exclusion_dir
from matssl.validate import parse_config

from .conftest import demo_slice
from .test_resume import stage_command
from .workflow import tiny_config, without_timing

pytestmark = pytest.mark.e2e


def same_output(a: Path, b: Path) -> bool:
    if a.suffix == ".json":
        return without_timing(json.loads(a.read_text())) == without_timing(json.loads(b.read_text()))
    return a.read_bytes() == b.read_bytes()


def guarded_config(tiny_demo: Path, tmp_path: Path) -> dict:
    cfg = tiny_config(tiny_demo)
    cfg["datasets"]["tiny"] = {"kind": "matbench", "task": "matbench_dielectric", "url": tiny_demo.as_uri()}  # download
    # a pool of 60 demo structures, the tiny set's 48 among them under the same ids: the leakage guard leaves 12
    pool = tmp_path / "pool.json.gz"
    with gzip.open(pool, "wt") as fh:
        json.dump(demo_slice(60), fh)
    cfg["datasets"]["pool"] = {"kind": "matbench", "task": "matbench_dielectric", "path": str(pool)}
    cfg["pretrain"].update(pool="pool", exclude_test_structures=True)
    cfg["pretrain"]["methods"] = {m: cfg["pretrain"]["methods"][m] for m in ("scratch", "crystalclr", "fingerprint")}
    cfg["pretrain"]["methods"]["chgnet"] = {"objective": "foundation"}
    cfg["predict"] = {"n": {"dataset": "tiny", "method": "fingerprint"}}
    cfg["probes"] = {"rf_trees": 5, "map_points": 20}
    cfg["pretrain"]["device"] = cfg["finetune"]["device"] = "cpu"  # bit-for-bit equality holds on the CPU only
    return cfg


def stages_in_order(cfg: dict) -> list:
    """Every stage of the plan in pipeline order (the pretraining ones keyed on the leakage guard's output where it
    exists in the current folder, as the workflow's plan() settles them)."""
    plan = Plan(parse_config(cfg))
    order = list(OUTPUTS)  # the stage kinds in pipeline order
    stages = sorted(plan.stages.values(), key=lambda s: order.index(s.kind))
    predict = plan.predict["n"]
    its_finetune = [s for s in predict.upstream.values() if s.kind == "finetune"]  # one: one fold, one seed
    assert len(its_finetune) == 1
    upstream = [s for s in stages if s.kind not in ("finetune", "probe", "predict")]
    return upstream + its_finetune + [s for s in stages if s.kind == "probe"] + [predict]


def kill_target(stage) -> str:
    """The file whose writing the job dies in: the last data file before the manifest."""
    if stage.kind == "download":
        return "matbench_dielectric.json.gz"
    return OUTPUTS[stage.kind][-2]


def run(stage, workdir: Path, **env: str) -> subprocess.CompletedProcess:
    workdir.mkdir(exist_ok=True)
    return subprocess.run(stage_command(stage.spec(), stage.dir), cwd=workdir, capture_output=True, env={**os.environ, **env})


def test_every_stage_kind_survives_sigkill(tiny_demo, tmp_path, monkeypatch):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    cfg = guarded_config(tiny_demo, tmp_path)
    stages = stages_in_order(cfg)
    assert {s.kind for s in stages} == set(OUTPUTS)
    while stages:
        stage = stages.pop(0)
        assert run(stage, straight).returncode == 0, stage.kind
        target = kill_target(stage)
        proc = run(stage, killed, MATSSL_KILL_AT=target)
        out = killed / stage.dir
        assert proc.returncode == -9, (stage.kind, proc.stderr.decode()[-2000:])
        assert not (out / "manifest.json").exists() and not (out / target).exists(), stage.kind
        assert run(stage, killed).returncode == 0, stage.kind
        names = sorted(f.name for f in (straight / stage.dir).iterdir() if f.name != "manifest.json")
        assert names == sorted(f.name for f in out.iterdir() if f.name != "manifest.json"), stage.kind  # no leftovers
        for name in names:
            assert same_output(straight / stage.dir / name, out / name), (stage.kind, name)
        m1, m2 = (json.loads((d / stage.dir / "manifest.json").read_text()) for d in (straight, killed))
        data = lambda m: {k: v for k, v in m["files"].items() if not k.endswith(".json")}  # noqa: E731 (JSON has timings)
        assert data(m1) == data(m2), stage.kind  # the same sizes and SHA-256 as the uninterrupted run
        if stage.kind == "leakage":
            assert m1["n_excluded"] == 48 and m1["n_pool"] == 60
            # the pretraining keys settle on the guard's output, read from its copy named by its digest (the workflow's
            # exclusion rule): the rest of the stages from the plan made now
            monkeypatch.chdir(straight)
            plan = Plan(parse_config(cfg))
            for d in (straight, killed):
                copy = d / exclusion_dir(plan.cfg.results, plan.exclusion) / "excluded.json"
                copy.parent.mkdir(parents=True)
                shutil.copyfile(d / stage.dir / "excluded.json", copy)
            later = list(OUTPUTS)[list(OUTPUTS).index("leakage") + 1 :]
            stages = [s for s in stages_in_order(cfg) if s.kind in later]
        if stage.kind == "pretrain" and stage.params["objective"] != "scratch":  # it trained on what the guard left
            assert m1["n_excluded"] == 48 and 0 < m1["n_pool"] <= 12, m1
