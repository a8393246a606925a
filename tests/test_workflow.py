"""End to end: the real workflow on 48 structures of the demo data, a couple of epochs."""

import json

import pytest

from .workflow import planned_jobs, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def run(workflow_run):
    return workflow_run


def test_report_and_property_target(run):
    workdir, cfg = run
    html = (workdir / "results/report.html").read_text()
    assert all(f">{m}<" in html for m in cfg["pretrain"]["methods"]) and "Provenance" in html
    prop = json.loads((workdir / "results/properties/n.json").read_text())
    methods = {(r["method"], r["fraction"]) for r in prop["summary"]}
    assert methods == {(m, f) for m in cfg["pretrain"]["methods"] for f in (0.5, 1.0)}
    assert len(prop["runs"]) == 6 * 1 * 2  # methods x folds x fractions
    for r in prop["runs"]:
        assert r["mae"] > 0 and r["n_test"] == 16


def test_rerun_does_nothing(run):
    assert planned_jobs(run[0]) == {}


def test_finetune_change_reruns_only_finetuning(run):
    workdir, cfg = run
    changed = json.loads(json.dumps(cfg))
    changed["finetune"]["optim"]["lr"] = 0.002
    write_config(workdir, changed)
    try:
        assert planned_jobs(workdir) == {"finetune": 12, "property": 1, "report": 1, "all": 1}
    finally:
        write_config(workdir, cfg)


def test_pretrain_change_reruns_pretraining_and_downstream_only(run):
    workdir, cfg = run
    changed = json.loads(json.dumps(cfg))
    changed["pretrain"]["methods"]["crystalclr"]["params"] = {"temperature": 0.2}
    write_config(workdir, changed)
    try:
        # scratch's encoder does not depend on crystalclr's parameters: only crystalclr's chain re-runs
        assert planned_jobs(workdir) == {"pretrain": 1, "finetune": 2, "probe": 1, "property": 1, "report": 1, "all": 1}
    finally:
        write_config(workdir, cfg)
    assert planned_jobs(workdir) == {}
