"""Finetuning runs offloaded to a machine without Snakemake (bench/offload.py, bench/offload_queue.py): the runs a
results folder lacks go out as a queue, run in another folder, and come back as runs that Snakemake takes as done,
with the numbers that the run gave here."""

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .workflow import bench, planned_jobs, without_timing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from offload_queue import pack  # noqa: E402

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
    proc = subprocess.run(
        [
            sys.executable,
            str(queue / "offload_queue.py"),
            "--queue",
            str(queue),
            "--workers",
            "2",
            "--gpus",
            "0",
            "--out",
            str(there),
            "--chunk-mb",
            "0.02",
        ],
        cwd=there,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    ran = json.loads((there / "queue.json").read_text())
    assert ran["finished"] == ran["packed"] == 3 and ran["failed"] == ran["left_out"] == []
    archives = sorted(there.glob("runs.*.tar"))
    assert len(archives) > 1  # cut into archives of about the size asked for, whole runs each

    # a run damaged on the way (a truncated file) is not taken; the intact ones are
    bad = tmp_path / "bad"
    bad.mkdir()
    with tarfile.open(archives[0]) as tar:
        names = tar.getnames()
        tar.extractall(bad / "x", filter="data")
    run = next(n for n in names if n.endswith("predictions.parquet"))
    (bad / "x" / run).write_bytes((bad / "x" / run).read_bytes()[:100])
    with tarfile.open(bad / archives[0].name, "w") as tar:
        for n in names:
            tar.add(bad / "x" / n, arcname=n, recursive=False)
    for a in archives[1:]:
        shutil.copy(a, bad)
    out = bench("offload.py", "import", *common, "--archives", str(bad), cwd=copy)
    assert out.returncode == 0 and out.stdout.strip().endswith("2 imported, 1 refused"), out.stdout + out.stderr
    assert "predictions.parquet differs from its manifest's size and SHA-256" in out.stdout
    assert planned_jobs(copy)["finetune"] == 1

    # the missing run filed under another run's key, then with a manifest that lists no files: refused, with reasons
    missing = next(n for n in before if not (copy / "results" / "finetune" / n / "manifest.json").exists())
    donor = next(n for n in before if n != missing)
    forged = tmp_path / "forged"
    for edit, reason in (
        (lambda d: None, "its manifest is of finetune"),
        (lambda d: d.update(key=missing, files={}), "its manifest does not list metrics.json"),
    ):
        shutil.rmtree(forged, ignore_errors=True)
        shutil.copytree(copy / "results" / "finetune" / donor, forged / "finetune" / missing)
        man = json.loads((forged / "finetune" / missing / "manifest.json").read_text())
        edit(man)
        (forged / "finetune" / missing / "manifest.json").write_text(json.dumps(man))
        with tarfile.open(forged / "runs.000.tar", "w") as tar:
            tar.add(forged / "finetune", arcname="finetune")
        out = bench("offload.py", "import", *common, "--archives", str(forged), cwd=copy)
        assert out.returncode == 0 and out.stdout.strip().endswith("0 imported, 1 refused"), out.stdout + out.stderr
        assert f"refused {missing}: " in out.stdout and reason in out.stdout, out.stdout

    # a link inside the archive (within its folder, which tar's data filter lets through): that run refused
    (forged / "finetune" / missing / "metrics.json").unlink()
    (forged / "finetune" / missing / "metrics.json").symlink_to("model.pt")
    with tarfile.open(forged / "runs.000.tar", "w") as tar:
        tar.add(forged / "finetune", arcname="finetune")
    out = bench("offload.py", "import", *common, "--archives", str(forged), cwd=copy)
    assert out.returncode == 0 and "metrics.json is a link" in out.stdout, out.stdout + out.stderr

    # archives that try to write outside their folder, or link out of it: refused whole, with a message
    for name, member in (("escape", tarfile.TarInfo("../../outside.txt")), ("link", tarfile.TarInfo("finetune/x"))):
        evil = tmp_path / name
        evil.mkdir()
        if name == "link":
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        with tarfile.open(evil / "runs.000.tar", "w") as tar:
            tar.addfile(member, io.BytesIO(b"") if member.isfile() else None)
        out = bench("offload.py", "import", *common, "--archives", str(evil), cwd=copy)
        assert out.returncode == 1 and "refused, nothing imported" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (copy / "outside.txt").exists() and not (copy / "results" / "outside.txt").exists()

    out = bench("offload.py", "import", *common, "--archives", str(there), cwd=copy)
    assert out.returncode == 0 and out.stdout.strip() == "1 imported, 2 here already", out.stdout + out.stderr
    for name, metrics in before.items():
        back = json.loads((copy / "results" / "finetune" / name / "metrics.json").read_text())
        assert without_timing(back) == without_timing(metrics)
    assert "finetune" not in planned_jobs(copy)  # done; the property summary and the report are made again
    again = bench("offload.py", "export", *common, "--properties", "n", "--out", str(tmp_path / "q2"), cwd=copy)
    assert again.returncode != 0 and "nothing to export" in again.stderr


def test_archives_hold_whole_runs_up_to_the_limit(tmp_path):
    """What comes back from a lent machine is limited: whole runs in queue order until the limit, the rest named."""
    runs = []
    for i, size in enumerate([300, 300, 500, 200]):
        run = tmp_path / "results" / "finetune" / f"r{i}"
        run.mkdir(parents=True)
        (run / "model.pt").write_bytes(b"x" * size)
        (run / "manifest.json").write_text("{}")
        runs.append(str(run))
    logs, out = tmp_path / "logs", tmp_path / "out"
    logs.mkdir()
    out.mkdir()
    (logs / "r0.log").write_text("done")
    # (each file counts 1,024 bytes of tar header): r0 and r1 in one archive, r2 in a second, r3 beyond the limit,
    # the log still within it
    packed, left_out = pack(runs, logs, out, chunk=4800, most=8300)
    assert packed == 3 and left_out == ["r3"]
    contents = []
    for a in sorted(out.glob("runs.*.tar")):
        with tarfile.open(a) as tar:
            contents.append(sorted(tar.getnames()))
    assert contents == [
        [f"finetune/r{i}/{f}" for i in (0, 1) for f in ("manifest.json", "model.pt")],
        ["finetune/r2/manifest.json", "finetune/r2/model.pt", "logs/r0.log"],
    ]
