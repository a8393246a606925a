"""End to end: the real workflow on 48 structures of the demo data, a couple of epochs."""

import json
import os
import re
import time

import pytest

from .workflow import UNSAFE_UNIT, bench, planned_jobs, snakemake, write_config

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
    dummies = {"dummy (mean)", "dummy (median)"}
    assert methods == {(m, f) for m in [*cfg["pretrain"]["methods"], *dummies] for f in (0.5, 1.0)}
    assert len(prop["runs"]) == 6 * 1 * 2  # methods x folds x fractions
    for r in prop["runs"]:
        assert r["mae"] > 0 and r["n_test"] == 16 and r["lr"] in (0.001, 0.003) and r["n_val"] >= 4
        assert r["stopped"] in ("early", "cap") and 0 <= r["best_step"] <= r["steps"] <= 12  # 0: the untrained model


def test_rerun_does_nothing(run):
    assert planned_jobs(run[0]) == {}


def test_data_with_new_timestamps_reruns_nothing(run, tiny_demo):
    """The data's bytes are in the stage keys, not its timestamps: a copy, a remount or a `touch` that leaves the
    bytes alone re-runs nothing (before, Snakemake's mtime trigger re-ran ingest and every stage after it), while
    new bytes plan the stages that read them."""
    workdir, _ = run
    corpus = workdir / "corpus"
    paths = [tiny_demo, corpus, *corpus.iterdir()]
    before = {path: path.stat() for path in paths}
    later = time.time() + 3600
    try:
        for path in paths:
            os.utime(path, (later, later))
        assert planned_jobs(workdir) == {}
        extra = corpus / "extra.cif"
        extra.write_bytes(next(corpus.glob("*.cif")).read_bytes())
        try:
            assert planned_jobs(workdir).get("ingest") == 1  # the pool's new key; the property's dataset is untouched
        finally:
            extra.unlink()
        assert planned_jobs(workdir) == {}
    finally:  # (the data is shared by the session's tests)
        for path, st in before.items():
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_report_escapes_text_from_the_config(run):
    html = (run[0] / "results/report.html").read_text()
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html and UNSAFE_UNIT not in html


def test_threads_change_reruns_nothing(run):
    """Threads are how a job runs, not what it computes: not in a rule's params (a rerun trigger) or a hash."""
    workdir, cfg = run
    changed = json.loads(json.dumps(cfg))
    changed["threads"] = 2
    write_config(workdir, changed)
    try:
        assert planned_jobs(workdir) == {}
    finally:
        write_config(workdir, cfg)


def test_finetune_change_reruns_only_finetuning(run):
    workdir, cfg = run
    changed = json.loads(json.dumps(cfg))
    changed["finetune"]["optim"]["lrs"] = [0.002]
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


def test_the_leakage_guard_is_one_stage_before_every_pretraining_job(run, tmp_path):
    """The guard's matching (the structure matcher takes CPU hours on a real pool) runs once, in its own cached
    stage; every pretraining job reads its ids. The pool (the bad-input corpus) holds the first 18 tiny structures
    under other ids, as CIFs: every tiny structure is in some test fold, so those 18 are found. Scratch, which does
    not see the pool, does not wait for it."""
    import shutil

    import pandas as pd
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    from .conftest import demo_slice

    workdir, cfg = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    guarded = json.loads(json.dumps(cfg))
    guarded["pretrain"].update(exclude_test_structures=True, exclude_match=["id", "composition_volume", "structure"])
    write_config(copy, guarded)
    # the pretraining stages are keyed on the guard's output (a checkpoint): a dry run cannot show them yet
    dry = snakemake(copy, "--dry-run", "--cores", "1")
    assert "the leakage guard runs first; then 2 summaries are re-made" in dry.stdout + dry.stderr
    snakemake(copy, "--cores", "2", "--until", "leakage")
    jobs = planned_jobs(copy)
    assert jobs["pretrain"] == len(cfg["pretrain"]["methods"]) - 1  # all but scratch
    assert not {"ingest", "graphs", "splits", "leakage"} & set(jobs)
    (stage,) = (copy / "results" / "leakage").glob("corpus-*")
    manifest = json.loads((stage / "manifest.json").read_text())
    excluded = json.loads((stage / "excluded.json").read_text())
    good = {f"good-{k:02d}" for k in range(18)}
    assert manifest["n_test"] == 48 and excluded["id"] == []
    assert good <= set(excluded["composition_volume"])
    # the structure matcher's answer against pymatgen's own, read from the CIFs, every pool structure against every
    # tiny one (no composition pre-filter)
    (pool,) = (copy / "results" / "ingest").glob("corpus-*")
    pool_ids = pd.read_parquet(pool / "structures.parquet", columns=["id"])["id"]
    tiny = [Structure.from_dict(d) for d in demo_slice(48)["structure"].values()]
    matcher = StructureMatcher()
    expected = {i for i in pool_ids if any(matcher.fit(Structure.from_file(workdir / "corpus" / f"{i}.cif"), t) for t in tiny)}
    assert good <= expected and set(excluded["structure"]) == expected

    # a new property on the same structures and folds (the same test structures): its splits and the guard are made
    # again, and the guard's exclusion set, the same, keeps every pretraining stage's key
    snakemake(copy, "--cores", "2", "--until", "pretrain")
    trained = sorted(p.name for p in (copy / "results" / "pretrain").iterdir())
    more = json.loads(json.dumps(guarded))
    more["properties"]["n_log"] = {**more["properties"]["n"], "transform": "log10"}
    write_config(copy, more)
    snakemake(copy, "--cores", "2", "--until", "leakage")
    assert len(list((copy / "results" / "leakage").glob("corpus-*"))) == 2
    jobs = planned_jobs(copy)
    assert "pretrain" not in jobs and jobs.get("finetune") == 22, jobs  # every run but scratch's 2 of n
    assert sorted(p.name for p in (copy / "results" / "pretrain").iterdir()) == trained

    # the copy is named by its digest: a copy that is not that set is removed (made again when a pretraining job needs
    # it; the encoders made from the right one stay)
    (copied,) = (copy / "results" / "exclusions").glob("*/excluded.json")
    copied.write_text("{}")
    assert "pretrain" not in planned_jobs(copy) and not copied.exists()


def test_the_pools_chain_runs_before_the_finetuning_of_encoders_already_made(run, tmp_path):
    """A new method and a new label fraction: the new pretraining job (the long chain) is scheduled before the
    finetuning jobs that could start at once on the encoders already made (rule priorities)."""
    import shutil

    workdir, cfg = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    more = json.loads(json.dumps(cfg))
    more["pretrain"]["methods"]["negnn_wide"] = {"objective": "negnn", "params": {"mask_ratio": 0.3}}
    more["finetune"]["fractions"] = [0.5, 0.75, 1.0]
    more["probes"]["enabled"] = False
    write_config(copy, more)
    out = snakemake(copy, "--cores", "1", "all")
    order = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", out.stdout + out.stderr, re.M)
    assert order.count("pretrain") == 1 and order.count("finetune") > 5, order
    assert order.index("pretrain") < order.index("finetune"), order


def test_damaged_stage_and_only_its_dependents_rerun(run, tmp_path):
    import shutil
    import subprocess

    from .workflow import BIN

    workdir, cfg = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    graphs = next((copy / "results" / "graphs").glob("tiny-*"))
    with open(graphs / "graphs.npz", "r+b") as fh:  # truncated, e.g. by a full disk or a partial copy
        fh.truncate(1000)
    assert planned_jobs(copy) == {"graphs": 1, "finetune": 12, "probe": 1, "property": 1, "report": 1, "all": 1}
    assert (graphs / "manifest.damaged.json").exists() and not (graphs / "manifest.json").exists()

    # a same-size change escapes the cheap size check; `matssl verify` compares SHA-256
    splits = next((copy / "results" / "splits").glob("n-*")) / "folds.json"
    text = splits.read_text()
    splits.write_text(text.replace('"test"', '"tset"', 1))
    out = subprocess.run([str(BIN / "matssl"), "verify", "results"], cwd=copy, capture_output=True, text=True)
    assert out.returncode == 1 and f"DAMAGED results/splits/{splits.parent.name}: folds.json" in out.stdout
    # ... and sets its manifest aside, so that the next run re-makes it and its dependents
    assert planned_jobs(copy) == {"graphs": 1, "splits": 1, "finetune": 12, "probe": 1, "property": 1, "report": 1, "all": 1}


def test_deleted_manifest_reruns_its_stage_and_dependents(run, tmp_path):
    import shutil
    import subprocess

    from .workflow import BIN

    workdir, _ = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    pretrain = next((copy / "results" / "pretrain").glob("negnn-s0-*"))
    (pretrain / "manifest.json").unlink()
    assert planned_jobs(copy) == {"pretrain": 1, "finetune": 2, "probe": 1, "property": 1, "report": 1, "all": 1}
    finetune = next((copy / "results" / "finetune").glob("n-scratch-*"))
    (finetune / "manifest.json").unlink()
    assert planned_jobs(copy) == {"pretrain": 1, "finetune": 3, "probe": 1, "property": 1, "report": 1, "all": 1}
    out = subprocess.run([str(BIN / "matssl"), "verify", "results"], cwd=copy, capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout.count("NO MANIFEST") == 2, out.stdout
    assert f"NO MANIFEST results/pretrain/{pretrain.name}: files without the manifest" in out.stdout


def test_jobs_find_matssl_when_the_environment_is_not_activated(run, tmp_path):
    """`.venv/bin/snakemake` with a PATH that lacks the venv (not activated): the jobs still run the project's own
    `matssl`, not 'command not found' (exit 127)."""
    import shutil
    import subprocess

    from .workflow import BIN, ROOT

    workdir, _ = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    (copy / "results/properties/n.json").unlink()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PATH")} | {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--cores", "1", "results/properties/n.json"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((copy / "results/properties/n.json").read_text())["property"] == "n"


def test_a_given_configfile_replaces_the_default_one(run, tmp_path):
    """`--configfile other.yaml` is the whole config: nothing of the workdir's config.yaml (the demo) merges in."""
    import yaml

    workdir, cfg = run
    other = json.loads(json.dumps(cfg))
    other["results"] = "results-other"
    other["properties"] = {"m": other["properties"]["n"]}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    out = snakemake(workdir, "--dry-run", "--cores", "1", "all", "--configfile", str(tmp_path / "other.yaml"))
    text = out.stdout + out.stderr
    assert "results-other/properties/m.json" in text
    assert "properties/n.json" not in text and "results/" not in text.replace("results-other/", "")
    # a key written twice in it (Snakemake's YAML keeps the last silently) stops the run, naming the key
    (tmp_path / "twice.yaml").write_text(yaml.safe_dump(other) + "results: results-twice\n")
    out = snakemake(workdir, "--dry-run", "--cores", "1", "all", "--configfile", str(tmp_path / "twice.yaml"), check=False)
    assert out.returncode != 0 and "key 'results' appears twice in one mapping" in out.stdout + out.stderr


def test_another_config_in_the_same_results_folder_remakes_the_summaries(run):
    """report.html and properties/<name>.json are not in hashed folders: a config with one method fewer (every
    finetuning stage of it finished) must re-make them, not show the other config's numbers, even where Snakemake
    looks at modification times only."""
    workdir, cfg = run
    other = json.loads(json.dumps(cfg))
    del other["pretrain"]["methods"]["barlow"]
    write_config(workdir, other)
    try:
        out = snakemake(workdir, "--dry-run", "--cores", "1", "--rerun-triggers", "mtime")
        assert "properties/n.json was made from another config" in out.stdout + out.stderr
        expect = {"probe": 1, "property": 1, "report": 1, "all": 1}
        assert planned_jobs(workdir, "--rerun-triggers", "mtime") == expect and planned_jobs(workdir) == expect
    finally:
        write_config(workdir, cfg)
    assert planned_jobs(workdir) == {}


def test_summaries_read_their_spec_from_a_file(run):
    """The report's and a property's spec name every run: through a file, not one command-line argument (Linux
    limits one to 128 KiB, which a large benchmark passes)."""
    workdir, _ = run
    out = snakemake(workdir, "--dry-run", "--printshellcmds", "--cores", "1", "--forcerun", "report", "property")
    cmds = re.findall(r"^Shell command: (python -m matssl.cli (?:report|property) .*)$", out.stdout + out.stderr, re.M)
    assert len(cmds) == 2, out.stdout + out.stderr
    for cmd in cmds:
        assert len(cmd) < 400 and "--spec-file" in cmd, cmd
        path = cmd.split("--spec-file ", 1)[1].split(" ", 1)[0].strip("'")
        assert json.loads((workdir / path).read_text())


def test_an_imported_encoder_finetunes_like_the_run_that_trained_it(run, tmp_path):
    """NEGNN's encoder.pt, imported as `objective: pretrained`, gives NEGNN's finetuning numbers bit for bit."""
    import shutil

    workdir, cfg = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    negnn = next((copy / "results" / "pretrain").glob("negnn-s0-*")) / "encoder.pt"
    shutil.copy(negnn, tmp_path / "from_a_colleague.pt")
    changed = json.loads(json.dumps(cfg))
    changed["pretrain"]["methods"]["imported"] = {
        "objective": "pretrained",
        "params": {"path": str(tmp_path / "from_a_colleague.pt")},
    }
    write_config(copy, changed)
    assert planned_jobs(copy) == {"pretrain": 1, "finetune": 2, "probe": 1, "property": 1, "report": 1, "all": 1}
    snakemake(copy, "--cores", "2")
    runs = json.loads((copy / "results/properties/n.json").read_text())["runs"]
    by = {(r["method"], r["fraction"]): r for r in runs}
    for frac in (0.5, 1.0):
        assert by[("imported", frac)]["mae"] == by[("negnn", frac)]["mae"]
        assert by[("imported", frac)]["best_step"] == by[("negnn", frac)]["best_step"]
    html = (copy / "results/report.html").read_text()
    assert "the leakage guard cannot apply" in html


def test_predictions_from_the_finetuned_models(run, tmp_path):
    """`predict:` gives results/predictions/<property>.parquet: on a model's own test fold, its predictions equal
    that run's predictions.parquet; with every model the same, the ensemble's spread is zero."""
    import shutil

    import numpy as np
    import pandas as pd

    from matssl.predict import run_predict
    from matssl.stages import Plan
    from matssl.validate import parse_config

    workdir, cfg = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    changed = json.loads(json.dumps(cfg))
    changed["predict"] = {"n": {"dataset": "tiny", "method": "negnn"}}  # the largest fraction (1.0) by default
    write_config(copy, changed)
    # nothing else re-runs (the report lists every stage, this one too)
    assert planned_jobs(copy) == {"predict": 1, "prediction": 1, "report": 1, "all": 1}
    snakemake(copy, "--cores", "2", "results/predictions/n.parquet")
    got = pd.read_parquet(copy / "results/predictions/n.parquet").set_index("id")
    assert (got["n_models"] == 1).all() and (got["y_pred_std"] == 0).all() and got["y_true"].notna().all()
    run_dir = next((copy / "results" / "finetune").glob("n-negnn-ps0-f0-p1-s0-*"))
    own = pd.read_parquet(run_dir / "predictions.parquet").set_index("id")
    np.testing.assert_allclose(got.loc[own.index, "y_pred_mean"], own["y_pred"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.loc[own.index, "y_true"], own["y_true"])

    # another method's predictions, then back: the file is re-made from the stage the config names, even where
    # timestamps alone would keep the newer, other file
    other = json.loads(json.dumps(changed))
    other["predict"]["n"]["method"] = "crystalclr"
    write_config(copy, other)
    snakemake(copy, "--cores", "2", "results/predictions/n.parquet")
    assert not np.allclose(pd.read_parquet(copy / "results/predictions/n.parquet")["y_pred_mean"], got["y_pred_mean"])
    write_config(copy, changed)
    snakemake(copy, "results/predictions/n.parquet", "--cores", "2", "--rerun-triggers", "mtime")
    back = pd.read_parquet(copy / "results/predictions/n.parquet").set_index("id")
    np.testing.assert_array_equal(back["y_pred_mean"], got["y_pred_mean"])

    # two copies of one model: the same mean, no spread
    stage = Plan(parse_config(changed)).predict["n"]
    spec = stage.spec()
    spec["upstream"] = {k: str(copy / v) if not k.startswith("model:") else str(run_dir) for k, v in spec["upstream"].items()}
    spec["upstream"]["model:again"] = str(run_dir)
    spec["runtime"]["threads"] = 1
    out = tmp_path / "twice"
    out.mkdir()
    run_predict(spec, out)
    twice = pd.read_parquet(out / "predictions.parquet").set_index("id")
    assert (twice["n_models"] == 2).all() and (twice["y_pred_std"] == 0).all()
    np.testing.assert_array_equal(twice["y_pred_mean"], got["y_pred_mean"])


def test_foundation_model_baseline_end_to_end(run, tmp_path):
    """CHGNet, frozen (a head on its features) and finetuned whole: the same protocol (same folds, fractions, seeds), a
    probe row (frozen), and the report's caveat that the leakage guard cannot apply to it, naming which is which."""
    import shutil

    import pandas as pd

    workdir, cfg = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    changed = json.loads(json.dumps(cfg))
    changed["pretrain"]["methods"]["chgnet"] = {"objective": "foundation", "params": {"model": "chgnet"}}
    changed["pretrain"]["methods"]["chgnet_all"] = {"objective": "foundation", "params": {"train": "all"}}
    write_config(copy, changed)
    assert planned_jobs(copy) == {"foundation": 1, "finetune": 4, "probe": 1, "property": 1, "report": 1, "all": 1}
    snakemake(copy, "--cores", "2")
    prop = json.loads((copy / "results/properties/n.json").read_text())
    scratch = sorted((r["fold"], r["fraction"], r["seed"]) for r in prop["runs"] if r["method"] == "scratch")
    for method in ("chgnet", "chgnet_all"):
        runs = [r for r in prop["runs"] if r["method"] == method]
        assert sorted((r["fold"], r["fraction"], r["seed"]) for r in runs) == scratch
        assert all(r["mae"] > 0 and r["n_test"] == 16 and 0 <= r["best_step"] <= r["steps"] for r in runs)
    newest = max((copy / "results" / "probe").glob("n-*"), key=lambda d: (d / "manifest.json").stat().st_mtime)
    probes = pd.read_parquet(newest / "probes.parquet")  # (the copied run's own probe stage is there too)
    assert set(probes.loc[probes["representation"] == "chgnet", "family"]) == {"foundation model (chgnet, frozen)"}
    html = (copy / "results/report.html").read_text()
    assert "trained on MPtrj (Materials Project structures)" in html and "Foundation model" in html
    assert "frozen, head only; trained on MPtrj" in html and "every weight finetuned; trained on MPtrj" in html
    # every pretrained encoder against each foundation model, in the report and in the benchmark summary (one fold:
    # no interval, so no winner is named)
    pretrained = sorted(m for m in cfg["pretrain"]["methods"] if m != "scratch")
    for model in ("chgnet", "chgnet_all"):
        section = html.split(f'id="against-{model}"', 1)[1].split("</table>", 1)[0]
        assert [r.split('<td class="l">')[2].split("<")[0] for r in section.split("<tr>")[2:]] == pretrained
        assert section.count("not tested") == len(pretrained)  # (pooled over the fractions, one per method)
    out = tmp_path / "summary"
    out.mkdir()
    proc = bench(
        "summarize_mp.py",
        "--config",
        str(copy / "config.yaml"),
        "--root",
        str(copy),
        "--out",
        str(out),
        "--name",
        "f",
        "--commit",
        "abc1234",
        cwd=copy,
    )
    assert proc.returncode == 0, proc.stderr
    text = (out / "f_benchmark.md").read_text()
    for model in ("chgnet", "chgnet_all"):
        rows = text.split(f"against {model} (Holm)", 1)[1].split("\n\n")[1].splitlines()[2:]
        assert [r.split(" | ")[1] for r in rows] == pretrained and all("not tested" in r for r in rows)


def test_per_atom_log1p_property_is_learnt_transformed_and_scored_in_its_unit(run, tmp_path):
    """A property learnt per atom of the cell and through log1p: its predictions and every metric are in the column's
    own unit (y_true is the raw column), and the finetuning runs go through the same protocol."""
    import shutil

    import numpy as np
    import pandas as pd

    workdir, cfg = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    changed = json.loads(json.dumps(cfg))
    changed["pretrain"]["methods"] = {"scratch": {"objective": "scratch"}}
    changed["probes"]["enabled"] = False
    changed["properties"]["n_cell"] = {**changed["properties"]["n"], "per_atom": "cell", "transform": "log1p"}
    write_config(copy, changed)
    snakemake(copy, "--cores", "2", "results/properties/n_cell.json")
    prop = json.loads((copy / "results/properties/n_cell.json").read_text())
    assert prop["per_atom"] == "cell" and -1 <= prop["atoms_spearman"] <= 1
    structures = pd.read_parquet(next((copy / "results" / "ingest").glob("tiny-*")) / "structures.parquet").set_index("id")
    for r in prop["runs"]:
        pred = pd.read_parquet(copy / r["dir"] / "predictions.parquet")
        np.testing.assert_array_equal(pred["y_true"].to_numpy(), structures.loc[pred["id"], "n"].to_numpy())
        assert 0.5 < pred["y_pred"].median() < 5 and r["mae"] < 2  # refractive indices, not log1p of n per atom


def test_classification_properties_run_end_to_end_and_reach_the_report(run, tmp_path):
    """A multi-class property (the crystal system of the demo file) and a binary one (n above a threshold): stratified
    folds, cross-entropy runs by the same protocol, ROC-AUC and accuracy against the class-frequency dummy, logistic
    probes, and the report's tables and ROC curves. One labelled structure has no graph (an isolated atom): it is in
    the folds and the label subsets are drawn over it, but no run or probe sees it."""
    import gzip
    import shutil

    import numpy as np
    import pandas as pd
    from pymatgen.core import Lattice, Structure

    workdir, cfg = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    with gzip.open(cfg["datasets"]["tiny"]["path"], "rt") as fh:
        raw = json.load(fh)
    lonely = Structure(Lattice.cubic(30.0), ["Si"], [[0, 0, 0]]).as_dict()
    raw = {
        col: {**vals, "48": {"structure": lonely, "n": 2.5, "crystal_sys": "cubic"}.get(col, vals["0"])}
        for col, vals in raw.items()
    }
    with gzip.open(tmp_path / "tiny_plus.json.gz", "wt") as fh:
        json.dump(raw, fh)
    changed = json.loads(json.dumps(cfg))
    changed["datasets"]["plus"] = {**cfg["datasets"]["tiny"], "path": str(tmp_path / "tiny_plus.json.gz")}
    changed["pretrain"]["methods"] = {"scratch": {"objective": "scratch"}, "negnn": {"objective": "negnn"}}
    changed["probes"] = {
        "models": ["ridge", "random_forest", "kernel_ridge"],
        "baselines": ["magpie"],
        "rf_trees": 10,
        "map_points": 40,
    }
    changed["properties"] = {
        "system": {"dataset": "plus", "column": "crystal_system", "kind": "classification", "folds": "kfold", "n_folds": 2},
        "high_n": {"dataset": "plus", "column": "n", "kind": "classification", "threshold": 2.1, "folds": "kfold", "n_folds": 3},
    }
    write_config(copy, changed)
    snakemake(copy, "--cores", "2")
    structures = pd.read_parquet(next((copy / "results" / "ingest").glob("plus-*")) / "structures.parquet").set_index("id")
    lonely_id = structures.index[-1]
    assert len(structures) == 49 and structures.loc[lonely_id, "n"] == 2.5
    fold0 = [
        json.loads(next((copy / "results" / "splits").glob(f"{p}-*/folds.json")).read_text())["folds"][0]
        for p in ("system", "high_n")
    ]
    assert any(lonely_id in f["train"] for f in fold0)  # the subsets of fold 0 are drawn over it
    for name, classes in (("system", sorted(set(structures["crystal_system"]))), ("high_n", ["<= 2.1", "> 2.1"])):
        prop = json.loads((copy / f"results/properties/{name}.json").read_text())
        assert prop["kind"] == "classification" and prop["classes"] == classes
        assert {r["method"] for r in prop["summary"]} == {"scratch", "negnn", "dummy (majority)"}
        dummy = [r for r in prop["summary"] if r["method"] == "dummy (majority)"]
        assert all(r["roc_auc_mean"] == 0.5 for r in dummy)
        for r in prop["runs"]:
            assert 0 <= r["roc_auc"] <= 1 and 0 <= r["accuracy"] <= 1 and r["log_loss"] > 0 and r["val_log_loss"] > 0
            pred = pd.read_parquet(copy / r["dir"] / "predictions.parquet")
            truth = structures.loc[pred["id"], "crystal_system" if name == "system" else "n"]
            expected = truth if name == "system" else np.where(truth > 2.1, "> 2.1", "<= 2.1")
            np.testing.assert_array_equal(pred["y_true"].to_numpy(), np.asarray(expected))
            proba = np.stack(pred["proba"].to_numpy())
            assert proba.shape == (len(pred), len(classes)) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
            assert (pred["y_pred"].to_numpy() == np.asarray(classes)[proba.argmax(axis=1)]).all()
        folds = json.loads(next((copy / "results" / "splits").glob(f"{name}-*/folds.json")).read_text())
        label = structures["crystal_system"] if name == "system" else structures["n"] > 2.1
        total = label.loc[[i for f in folds["folds"] for i in f["test"]]].value_counts()
        for f in folds["folds"]:  # stratified: each class split as evenly as the folds allow (within one structure)
            got = label.loc[f["test"]].value_counts()
            assert all(abs(got.get(c, 0) - n / len(folds["folds"])) < 1 for c, n in total.items())
        probes = pd.read_parquet(next((copy / "results" / "probe").glob(f"{name}-*")) / "probes.parquet")
        assert set(probes["model"]) == {"logistic", "random_forest"} and probes["roc_auc"].between(0, 1).all()
    html = (copy / "results/report.html").read_text()
    assert "ROC-AUC" in html and "dummy (majority)" in html and "ROC curves of" in html and "logistic regression" in html
