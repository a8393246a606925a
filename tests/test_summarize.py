"""`matssl summarize`: several results folders (or copies of them) give one summary whose statistics are taken over
all of their runs, each run counted once by its stage key; runs that are not one protocol are refused with a message."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from matssl import Runs, SummaryError, collect

pytestmark = pytest.mark.e2e


def summarize(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "matssl.cli", "summarize", *args], cwd=cwd, capture_output=True, text=True)


def part(results, dest, keep) -> None:
    """A copy of a results folder's property summaries with only the runs `keep(run)` is true of, and its pretraining
    stages (what bench/parts.py saves)."""
    (dest / "properties").mkdir(parents=True)
    for f in (results / "properties").glob("*.json"):
        d = json.loads(f.read_text())
        (dest / "properties" / f.name).write_text(json.dumps({**d, "runs": [r for r in d["runs"] if keep(r)]}))
    shutil.copytree(results / "pretrain", dest / "pretrain")


def test_folders_summarised_together_give_the_summary_of_the_whole(workflow_run, tmp_path):
    workdir, cfg = workflow_run
    results = workdir / "results"
    whole = summarize(str(results), "--out", str(tmp_path / "whole"), "--config", str(workdir / "config.yaml"), cwd=workdir)
    assert whole.returncode == 0, whole.stderr
    assert "12 runs of 1 properties from 1 folders" in whole.stdout
    text = (tmp_path / "whole" / "summary.md").read_text()
    assert "## The answer, family by family" in text and "### 100 % of the training labels" in text
    assert "## Pretraining" in text and "Runs from: " in text
    html = (tmp_path / "whole" / "report.html").read_text()
    assert "<h1>matssl summary</h1>" in html and 'id="families-table"' in html and 'alt="label efficiency of n"' in html
    assert 'alt="parity plot of n"' in html  # (the runs' predictions are at hand: the folder is here)

    # the same runs as two folders that share the runs with half the labels, summarised from another folder: the same
    # numbers, the shared runs counted once, no parity plot (the predictions are not in the copies)
    part(results, tmp_path / "a", lambda r: r["fraction"] == 0.5)
    part(results, tmp_path / "b", lambda r: True)
    both = summarize("a", "b", "--out", "both", "--config", str(workdir / "config.yaml"), cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    assert "12 runs of 1 properties from 2 folders" in both.stdout
    assert json.loads((tmp_path / "both" / "summary.json").read_text()) == json.loads(
        (tmp_path / "whole" / "summary.json").read_text()
    )
    assert "a (6 runs); b (6 runs)" in (tmp_path / "both" / "summary.md").read_text()
    assert 'alt="parity plot of n"' not in (tmp_path / "both" / "report.html").read_text()

    # a summary written by older code (no provenance, no protocol): read from its runs' manifests, the same summary;
    # beside it a summary set aside (a pending leakage guard's), which is not read
    old = tmp_path / "old"
    shutil.copytree(results / "properties", old / "properties")
    (old / "finetune").symlink_to(results / "finetune")
    (old / "pretrain").symlink_to(results / "pretrain")
    d = json.loads((old / "properties" / "n.json").read_text())
    for k in ("finetune", "finetune_code", "splits"):
        del d[k]
    d["runs"] = [{k: v for k, v in r.items() if k not in ("device", "wall_s", "pretrain")} for r in d["runs"]]
    (old / "properties" / "n.json").write_text(json.dumps(d))
    (old / "properties" / "n.stale.json").write_text("{}")
    again = summarize("old", "--out", "again", "--config", str(workdir / "config.yaml"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "summary.json").read_text()) == json.loads(
        (tmp_path / "whole" / "summary.json").read_text()
    )

    # a comparison named beforehand that no run can make is said to be left out of the confirmatory family
    named = yaml.safe_load((workdir / "config.yaml").read_text())
    named["statistics"] = {"confirmatory": [{"method": "nothing_ran", "property": "n"}, {"method": "negnn", "property": "n"}]}
    (tmp_path / "named.yaml").write_text(yaml.safe_dump(named))
    proc = summarize("a", "--out", "named", "--config", "named.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "named" / "summary.md").read_text()
    assert "so not in the confirmatory family: nothing_ran against scratch on n." in md
    assert "### Named beforehand: the confirmatory comparisons (Holm)" in md and "| negnn | scratch | n |" in md
    assert 'id="confirmatory-table"' in (tmp_path / "named" / "report.html").read_text()
    missing = summarize("a", "--out", "x", "--config", "no-such.yaml", cwd=tmp_path)
    assert missing.returncode != 0 and "no-such.yaml" in missing.stderr and "Traceback" not in missing.stderr

    # a run that gave other numbers in another folder: one message, no traceback
    path = tmp_path / "b" / "properties" / "n.json"
    d = json.loads(path.read_text())
    d["runs"][0]["mae"] += 1.0
    path.write_text(json.dumps(d))
    bad = summarize("b", "a", "--out", "bad", cwd=tmp_path)
    assert bad.returncode != 0 and "gave other numbers in an earlier folder" in bad.stderr and "Traceback" not in bad.stderr


def summary_of(runs: list[dict], **fields) -> dict:
    base = {
        "property": "p",
        "unit": "eV",
        "transform": "none",
        "kind": "regression",
        "per_atom": "none",
        "classes": None,
        "finetune": {"optim": {"lrs": [0.001]}},
        "finetune_code": "c0",
        "splits": "s0",
    }
    return {**base, **fields, "runs": runs}


def run(**fields) -> dict:
    return {
        "dir": "results/finetune/p-scratch-f0-p1-s0-aaaaaaaaaaaa",
        "method": "scratch",
        "pretrain_seed": 0,
        "pretrain_epochs": 0,
        "fold": 0,
        "fraction": 1.0,
        "seed": 0,
        "mae": 1.0,
        "pretrain": None,
        **fields,
    }


def test_runs_of_another_protocol_are_refused():
    runs = Runs()
    runs.add("a", summary_of([run()]))
    runs.add("b", summary_of([run(device="cuda")]))  # the same run (stage key) elsewhere: where it ran may differ
    assert runs.sources == {"a": 1, "b": 0}
    with pytest.raises(SummaryError, match="made with other code or settings"):  # the same run under another key
        runs.add("c", summary_of([run(dir="results/finetune/p-scratch-f0-p1-s0-bbbbbbbbbbbb")]))
    with pytest.raises(SummaryError, match="another finetune_code"):
        runs.add("d", summary_of([run(fold=1)], finetune_code="c1"))
    other = Runs()
    other.add("a", summary_of([run(pretrain="scratch-s0-cccccccccccc")]))
    with pytest.raises(SummaryError, match="which none of the folders holds"):
        other.check()


def test_a_folder_without_property_summaries_or_of_older_code_is_named(tmp_path):
    with pytest.raises(SummaryError, match="no property summary"):
        collect([tmp_path])
    (tmp_path / "properties").mkdir()
    old = summary_of([run()])
    del old["finetune_code"]
    (tmp_path / "properties" / "p.json").write_text(json.dumps(old))
    with pytest.raises(SummaryError, match="older code"):
        collect([tmp_path])


def test_one_encoder_per_stage_and_only_summaries_are_read(tmp_path):
    """A pretraining stage of the same name in two folders must be the same encoder (a GPU's re-run may not be); a
    file being written (`.tmp-...`) or set aside (`<p>.stale.json`) is not a summary; a damaged one is named."""

    def folder(name: str, sha: str, runs: list[dict]) -> None:
        stage = tmp_path / name / "pretrain" / "negnn-s0-cccccccccccc"
        stage.mkdir(parents=True)
        (stage / "manifest.json").write_text(
            json.dumps({"params": {"method": "negnn", "seed": 0, "objective": "negnn"}, "files": {"encoder.pt": {"sha256": sha}}})
        )
        (tmp_path / name / "properties").mkdir()
        (tmp_path / name / "properties" / "p.json").write_text(json.dumps(summary_of(runs, atoms_spearman=0.9)))

    negnn = dict(method="negnn", dir="results/finetune/p-negnn-f0-p1-s0-dddddddddddd", pretrain="negnn-s0-cccccccccccc")
    folder("a", "1" * 64, [run(**negnn)])
    folder("b", "2" * 64, [run(**negnn, fold=1)])
    (tmp_path / "a" / "properties" / ".tmp-host-1-p.json").write_text('{"property": "p", "ru')
    (tmp_path / "a" / "properties" / "p.stale.json").write_text("[]")
    runs = collect([tmp_path / "a"])
    assert runs.props["p"]["atoms_spearman"] == 0.9 and len(runs.props["p"]["runs"]) == 1
    with pytest.raises(SummaryError, match="holds another encoder"):
        collect([tmp_path / "a", tmp_path / "b"])
    (tmp_path / "b" / "properties" / "p.json").write_text('{"property": "p", "ru')
    with pytest.raises(SummaryError, match="not a readable property summary"):
        collect([tmp_path / "b"])
