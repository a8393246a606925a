"""A benchmark run in parts (bench/parts.py): the parts saved from a run merge into the summary of the whole run, a
run of one part made with other code is refused, and saved encoders restore into a later run's results folder."""

import json
import re
import shutil
import subprocess

import pytest

from .workflow import bench, planned_jobs, write_config

pytestmark = pytest.mark.e2e


def save(workdir, parts, name: str, *args: str) -> dict:
    out = bench(
        "parts.py",
        "save",
        "--name",
        name,
        "--config",
        str(workdir / "config.yaml"),
        "--root",
        str(workdir),
        "--parts-dir",
        str(parts),
        "--commit",
        "abc1234",
        *args,
        cwd=workdir,
    )
    assert out.returncode == 0, out.stderr
    return json.loads((parts / name / "properties" / "n.json").read_text())


def summary(workdir, out, name: str, *args: str) -> list[dict]:
    proc = bench(
        "summarize_mp.py",
        "--config",
        str(workdir / "config.yaml"),
        "--root",
        str(workdir),
        "--out",
        str(out),
        "--name",
        name,
        "--commit",
        "abc1234",
        *args,
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / f"{name}_benchmark.json").read_text())


def merge(workdir, parts, out, *names: str) -> subprocess.CompletedProcess:
    return bench(
        "summarize_mp.py",
        "--config",
        str(workdir / "config.yaml"),
        "--parts",
        *names,
        "--parts-dir",
        str(parts),
        "--out",
        str(out),
        "--root",
        str(workdir),
        cwd=workdir,
    )


def split(parts, name: str, keep, new: str) -> None:
    """A copy of part `name` with only the runs `keep(run)` is true of."""
    shutil.copytree(parts / name, parts / new)
    path = parts / new / "properties" / "n.json"
    d = json.loads(path.read_text())
    path.write_text(json.dumps({**d, "runs": [r for r in d["runs"] if keep(r)]}))


def test_parts_merge_into_the_summary_of_the_whole_run(workflow_run, tmp_path):
    workdir, cfg = workflow_run
    parts, out = tmp_path / "parts", tmp_path / "out"
    out.mkdir()
    saved = save(workdir, parts, "all")
    assert len(saved["runs"]) == 12 and {r["device"] for r in saved["runs"]} == {"cpu"}
    assert all(r["wall_s"] > 0 and r["pretrain"].startswith(r["method"] + "-s0-") for r in saved["runs"])
    stages = sorted(p.name.split("-")[0] for p in (parts / "all" / "pretrain").iterdir())
    assert stages == sorted(cfg["pretrain"]["methods"])
    assert all((p / "encoder.pt").stat().st_size > 0 for p in (parts / "all" / "pretrain").iterdir())
    assert (parts / "all" / "config.yaml").read_text() == (workdir / "config.yaml").read_text()

    whole = summary(workdir, out, "whole")
    # the run as two parts, one per label fraction (as if two machines had run them), and a part given twice
    split(parts, "all", lambda r: r["fraction"] == 0.5, "half")
    split(parts, "all", lambda r: r["fraction"] == 1.0, "full")
    # what is left to run when only the part with half the labels is saved: every method's runs with all of them
    only = tmp_path / "only-half"
    shutil.copytree(parts / "half", only / "half")
    proc = bench(
        "parts.py",
        "status",
        "--config",
        str(workdir / "config.yaml"),
        "--root",
        str(workdir),
        "--parts-dir",
        str(only),
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr
    methods = cfg["pretrain"]["methods"]
    left = ", ".join(f"{m} 0/{6 // len(methods)}" for m in sorted(methods))
    assert "  0.5 of the labels: 6/6 saved\n" in proc.stdout
    assert f"  1 of the labels: 0/6 saved; to run: {left}\n" in proc.stdout
    assert proc.stdout.endswith(f"6 of 12 finetuning runs saved in {only}\n")
    # (merged where the data is not: the config is not read)
    elsewhere = json.loads(json.dumps(cfg))
    elsewhere["datasets"]["tiny"]["path"] = str(tmp_path / "not-here.json.gz")
    write_config(tmp_path, elsewhere)
    merged = summary(
        workdir,
        out,
        "parts",
        "--parts",
        "half",
        "full",
        "all",
        "--parts-dir",
        str(parts),
        "--config",
        str(tmp_path / "config.yaml"),
    )
    assert merged == whole
    text = (out / "parts_benchmark.md").read_text()
    assert "abc1234 (half), abc1234 (full), abc1234 (all)" in text and "Probes are not saved in parts" in text
    held = [line for line in text.splitlines() if line.startswith("Test predictions held at the training targets' range")]
    assert len(held) == 2 and all(re.search(rf"\b{m} \d+ of [1-9]\d*\b", held[0]) for m in methods)  # a fraction each

    # a run of the same (method, fold, fraction, seed) with another stage key: other code or settings
    split(parts, "full", lambda r: True, "other")
    path = parts / "other" / "properties" / "n.json"
    d = json.loads(path.read_text())
    d["runs"][0]["dir"] = d["runs"][0]["dir"][:-12] + "0" * 12
    path.write_text(json.dumps(d))
    proc = merge(workdir, parts, out, "full", "other")
    assert proc.returncode != 0 and "made with other code or settings" in proc.stderr
    # status counts it as not saved, and says which part's commit holds it
    alone = tmp_path / "only-other"
    shutil.copytree(parts / "other", alone / "other")
    proc = bench(
        "parts.py",
        "status",
        "--config",
        str(workdir / "config.yaml"),
        "--root",
        str(workdir),
        "--parts-dir",
        str(alone),
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr
    assert "  1 of the labels: 5/6 saved; to run: " in proc.stdout
    assert "; saved from other code or settings: 1 at abc1234\n" in proc.stdout

    # parts that share no run, but whose NEGNN runs started from two different encoders
    split(parts, "full", lambda r: True, "retrained")
    old = next((parts / "retrained" / "pretrain").glob("negnn-s0-*"))
    new = old.with_name("negnn-s0-" + "0" * 12)
    old.rename(new)
    manifest = json.loads((new / "manifest.json").read_text())
    manifest["files"]["encoder.pt"]["sha256"] = "0" * 64
    (new / "manifest.json").write_text(json.dumps(manifest))
    path = parts / "retrained" / "properties" / "n.json"
    d = json.loads(path.read_text())
    d["runs"] = [{**r, "pretrain": new.name if r["pretrain"] == old.name else r["pretrain"]} for r in d["runs"]]
    path.write_text(json.dumps(d))
    proc = merge(workdir, parts, out, "half", "retrained")
    assert proc.returncode != 0 and "runs of one method started from different encoders" in proc.stderr

    # parts finetuned with other settings
    split(parts, "full", lambda r: True, "longer")
    path = parts / "longer" / "properties" / "n.json"
    d = json.loads(path.read_text())
    d["finetune"]["optim"]["max_steps"] += 1
    path.write_text(json.dumps(d))
    proc = merge(workdir, parts, out, "half", "longer")
    assert proc.returncode != 0 and "property n has another finetune than an earlier folder" in proc.stderr


def test_a_part_of_some_methods(workflow_run, tmp_path):
    """`save --methods`: a part of some of a config's methods (scratch's runs saved in another part); the two merge
    into the summary of the whole run."""
    workdir, cfg = workflow_run
    parts, out = tmp_path / "parts", tmp_path / "out"
    out.mkdir()
    others = sorted(m for m in cfg["pretrain"]["methods"] if m != "scratch")
    assert len(save(workdir, parts, "scratch", "--methods", "scratch")["runs"]) == 12 // (len(others) + 1)
    rest = save(workdir, parts, "rest", "--methods", *others)
    assert sorted({r["method"] for r in rest["runs"]}) == others
    assert not list((parts / "rest" / "pretrain").glob("scratch-*"))
    merged = summary(workdir, out, "parts", "--parts", "scratch", "rest", "--parts-dir", str(parts))
    assert merged == summary(workdir, out, "whole")
    proc = bench(
        "parts.py",
        "save",
        "--name",
        "typo",
        "--config",
        str(workdir / "config.yaml"),
        "--root",
        str(workdir),
        "--parts-dir",
        str(parts),
        "--methods",
        "scrach",
        cwd=workdir,
    )
    assert proc.returncode != 0 and "--methods ['scrach']: not methods of this config" in proc.stderr
    assert not (parts / "typo").exists()


def test_saved_encoders_restore_into_a_later_run(workflow_run, tmp_path):
    """A later part on another machine: the data stages made, no pretraining, finetuning or summary yet."""
    workdir, cfg = workflow_run
    copy, parts = tmp_path / "run", tmp_path / "parts"
    shutil.copytree(workdir, copy, symlinks=True)
    save(copy, parts, "p")
    for name in ("../../x", "/tmp/x", ".."):  # a part is a folder of bench/parts, nowhere else
        out = bench(
            "parts.py", "save", "--name", name, "--config", str(copy / "config.yaml"), "--parts-dir", str(parts), cwd=copy
        )
        assert out.returncode == 2 and "a part's name is letters, digits" in out.stderr, out.stderr
    for made in ("pretrain", "finetune", "probe", "properties"):
        shutil.rmtree(copy / "results" / made)
    (copy / "results" / "report.html").unlink()
    n = len(cfg["pretrain"]["methods"])
    assert planned_jobs(copy)["pretrain"] == n
    restore = ["restore", "--name", "p", "--config", str(copy / "config.yaml"), "--root", str(copy), "--parts-dir", str(parts)]

    # an input of a pretraining stage not made yet: a restored stage would be older than it, and made again
    (copy / "results" / "augment").rename(copy / "aside")
    out = bench("parts.py", *restore, cwd=copy)
    assert out.returncode != 0 and "make the pretraining stages' inputs first" in out.stderr and "augment/" in out.stderr
    (copy / "aside").rename(copy / "results" / "augment")

    # a swapped encoder (a part saved from a stage, then its encoder.pt replaced) is refused, and trains again
    saved = next((parts / "p" / "pretrain").glob("negnn-s0-*")) / "encoder.pt"
    kept = saved.read_bytes()
    shutil.copyfile(next((parts / "p" / "pretrain").glob("dssl-s0-*")) / "encoder.pt", saved)
    out = bench("parts.py", *restore, cwd=copy)
    assert out.returncode == 0 and f"restored {n - 1} pretraining stages" in out.stdout, out.stderr
    assert f"refused {saved.parent.name}: encoder.pt differs from its manifest's size and SHA-256" in out.stdout
    shutil.rmtree(copy / "results" / "pretrain")
    saved.write_bytes(kept)

    out = bench("parts.py", *restore, cwd=copy)
    assert out.returncode == 0 and f"restored {n} pretraining stages" in out.stdout, out.stderr
    negnn = next((copy / "results" / "pretrain").glob("negnn-s0-*"))
    assert (negnn / "encoder.pt").read_bytes() == (parts / "p" / "pretrain" / negnn.name / "encoder.pt").read_bytes()
    planned = planned_jobs(copy)
    assert "pretrain" not in planned and planned["finetune"] == 12

    # other pretraining settings make other stages: the part's trained encoders are not theirs (scratch does not
    # pretrain: its stage is the same)
    changed = json.loads(json.dumps(cfg))
    changed["pretrain"]["optim"]["epochs"] = 3
    write_config(copy, changed)
    out = bench("parts.py", *restore, cwd=copy)
    assert out.returncode == 0 and "restored 0 pretraining stages" in out.stdout, out.stderr
    other = out.stdout.split("trained again): ", 1)[1].split()
    assert sorted(k.split("-s0-")[0] for k in other) == sorted(m for m in cfg["pretrain"]["methods"] if m != "scratch")


def test_a_sitting_saves_as_it_goes(workflow_run, tmp_path):
    """A sitting that may end without warning: `save --pretraining` keeps its encoders as they finish, `status
    --targets` names the runs no part holds (for Snakemake), `save --unsaved` keeps only the finished ones no part
    holds; a save's unfinished folder is no part; the parts merge into the summary of the whole run, and `restore`
    puts back the encoders of several parts."""
    workdir, cfg = workflow_run
    methods = sorted(cfg["pretrain"]["methods"])
    parts, out = tmp_path / "parts", tmp_path / "out"
    out.mkdir()
    # a sitting cut short: no property summary yet, and only scratch's runs finished
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    shutil.rmtree(copy / "results" / "properties")
    unfinished = sorted(p for p in (copy / "results" / "finetune").iterdir() if not p.name.startswith("n-scratch-"))
    assert len(unfinished) == 12 - 12 // len(methods)
    for p in unfinished:
        shutil.rmtree(p)

    def parts_py(root, *args: str, parts_dir=parts) -> subprocess.CompletedProcess:
        common = ["--config", str(root / "config.yaml"), "--root", str(root), "--parts-dir", str(parts_dir)]
        return bench("parts.py", *args, *common, cwd=root)

    proc = parts_py(copy, "save", "--name", "pre", "--commit", "abc1234", "--pretraining")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name.split("-s0-")[0] for p in (parts / "pre" / "pretrain").iterdir()) == methods
    assert not list((parts / "pre" / "properties").iterdir())
    proc = parts_py(copy, "save", "--name", "pre2", "--pretraining")
    assert proc.returncode != 0 and "no finished pretraining stage here that no saved part holds" in proc.stderr
    assert not (parts / "pre2").exists()

    # every run is left to run, Snakemake's targets; scratch's alone
    proc = parts_py(copy, "status", "--targets")
    assert proc.returncode == 0, proc.stderr
    every = proc.stdout.split()
    assert len(every) == 12 and all(t.startswith("results/finetune/") and t.endswith("/manifest.json") for t in every)
    proc = parts_py(copy, "status", "--targets", "--methods", "scratch")
    assert len(proc.stdout.split()) == 12 // len(methods) and set(proc.stdout.split()) < set(every)
    proc = parts_py(copy, "status", "--targets", "--properties", "nope")
    assert proc.returncode != 0 and "--properties ['nope']: not properties of this config" in proc.stderr

    # the first save of finished runs (no part holds runs yet): scratch's; what is left is the unfinished runs
    assert len(save(copy, parts, "a", "--unsaved")["runs"]) == 12 // len(methods)
    proc = parts_py(copy, "status", "--targets")
    left = proc.stdout.split()
    assert sorted(left) == [f"results/finetune/{p.name}/manifest.json" for p in unfinished]
    assert planned_jobs(copy, *left) == {"finetune": len(unfinished)}

    # a save cut short leaves `.tmp-NAME`: not a part, its runs still to run and to save
    proc = parts_py(workdir, "save", "--name", "b", "--unsaved", parts_dir=tmp_path / "elsewhere")
    assert proc.returncode == 0, proc.stderr
    shutil.copytree(tmp_path / "elsewhere" / "b", parts / ".tmp-b")
    (parts / ".tmp-b" / "part.json").unlink()
    assert sorted(parts_py(copy, "status", "--targets").stdout.split()) == sorted(left)
    assert parts_py(copy, "status").returncode == 0

    # the rest, once run: whatever no part holds; then nothing is left
    rest = save(workdir, parts, "b", "--unsaved")
    assert len(rest["runs"]) == len(unfinished) and "scratch" not in {r["method"] for r in rest["runs"]}
    assert not (parts / ".tmp-b").exists()
    proc = parts_py(workdir, "status", "--targets")
    assert proc.returncode == 1 and not proc.stdout and "every finetuning run of n (" in proc.stderr
    proc = parts_py(workdir, "save", "--name", "c", "--unsaved")
    assert proc.returncode != 0 and "that no saved part holds" in proc.stderr and not (parts / "c").exists()
    merged = summary(workdir, out, "parts", "--parts", "a", "b", "--parts-dir", str(parts))
    assert merged == summary(workdir, out, "whole")

    # a later sitting puts back the encoders of two parts (scratch's in one, the others' in the other)
    shutil.rmtree(copy / "results" / "pretrain")
    proc = parts_py(copy, "restore", "--name", "a", "b")
    assert proc.returncode == 0 and f"restored {len(methods)} pretraining stages" in proc.stdout, proc.stderr
