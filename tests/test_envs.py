"""envs/: the rules' software environments (`snakemake --sdm conda`) against pyproject.toml: the same packages with
the same version ranges (a drift fails), CPU and CUDA variants that differ only in torch's build, and a workflow that
gives every rule its environment."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
ENVS = {"cpu": ROOT / "envs" / "matssl.yaml", "cuda": ROOT / "envs" / "matssl-cuda.yaml"}
# PyPI name -> conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch", "torch-geometric": "pytorch_geometric", "matplotlib": "matplotlib-base"}
PLANNER_ONLY = {"snakemake"}  # what plans the run, not what a job runs
TOOLS = {"python", "pip", "c-compiler", "cuda-version"}  # not packages of pyproject.toml


def pyproject() -> tuple[dict[str, str], str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        if req.name not in PLANNER_ONLY:
            deps[CONDA_NAMES.get(req.name, req.name)] = str(req.specifier)
    return deps, project["requires-python"]


def environment(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """An environment file's packages: name -> version range, and name -> build string (conda's third field)."""
    env = yaml.safe_load(path.read_text())
    assert env["channels"][0] == "conda-forge", f"{path.name}: conda-forge first"
    ranges, builds = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip section
            for line in dep["pip"]:
                req = Requirement(line)
                ranges[req.name] = str(req.specifier)
            continue
        name, *rest = dep.split()
        ranges[name] = rest[0].replace(" ", "") if rest else ""
        if len(rest) > 1:
            builds[name] = rest[1]
    return ranges, builds


@pytest.mark.parametrize("variant", list(ENVS))
def test_the_environments_have_pyprojects_packages_and_ranges(variant):
    wanted, python = pyproject()
    have, builds = environment(ENVS[variant])
    assert {k: v for k, v in have.items() if k not in TOOLS} == wanted
    assert have["python"] == python
    assert re.fullmatch(r"\*cuda\*" if variant == "cuda" else r"\*cpu\*", builds["pytorch"])


def test_the_variants_differ_only_in_torchs_build():
    (cpu, cpu_builds), (cuda, cuda_builds) = environment(ENVS["cpu"]), environment(ENVS["cuda"])
    assert {k: v for k, v in cuda.items() if k != "cuda-version"} == cpu
    assert {k: v for k, v in cuda_builds.items() if k != "pytorch"} == {k: v for k, v in cpu_builds.items() if k != "pytorch"}


def test_every_rule_names_its_environment():
    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    blocks = [b for b in re.split(r"(?m)^(?=(?:rule|checkpoint) \w+:)", text) if re.match(r"(?:rule|checkpoint) ", b)]
    shell = [b for b in blocks if "shell:" in b]
    assert shell and all("conda:\n        ENV" in b for b in shell), [b.split(":")[0] for b in shell if "conda:" not in b]


FAKE_CONDA = """#!/bin/sh
# conda where no channel can be reached: what Snakemake asks of it to plan a run (`snakemake --sdm conda -n`)
case "$*" in
  --version) echo "conda 24.7.1" ;;
  "info --json") echo '{"conda_version": "24.7.1", "root_prefix": "/opt/conda", "conda_prefix": "/opt/conda",
    "envs_dirs": ["/opt/conda/envs"], "pkgs_dirs": ["/opt/conda/pkgs"], "platform": "linux-64"}' ;;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}, "success": true}' ;;
  *) echo "no conda here: $*" >&2; exit 1 ;;
esac
"""


@pytest.mark.e2e
@pytest.mark.parametrize("torch_build", ["cpu", "cuda"])
def test_sdm_conda_plans_every_job_with_its_environment(workflow_run, tmp_path, torch_build):
    """`snakemake --sdm conda -n` (a stand-in conda: no channel is reachable here) plans every job of a run, each
    in the environment of the torch build asked for."""
    import os
    import subprocess

    from .workflow import BIN, ROOT

    workdir, _ = workflow_run
    (tmp_path / "conda").write_text(FAKE_CONDA)
    (tmp_path / "conda").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}"}
    env["MATSSL_TORCH"] = torch_build
    out = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "-n",
            "--sdm",
            "conda",
            "--cores",
            "1",
            "--forceall",
            "all",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert re.findall(r"Conda environment (\S+) will be created", text) == [str(ENVS[torch_build])]
    assert re.search(r"^finetune +[1-9]", text, re.M) and re.search(r"^report +1", text, re.M)


@pytest.mark.e2e
def test_a_rule_command_runs_where_the_package_is_not_installed(workflow_run, tmp_path, monkeypatch):
    """A rule's command (`python -m matssl.cli ...`) with only the workflow's src/ on PYTHONPATH, under an interpreter
    that has every library but not matssl (the venv's site-packages without its .pth files, which hold the editable
    install): the stages it runs give the same files as the workflow's run."""
    import hashlib
    import json
    import os
    import subprocess
    import sys

    from matssl.stages import OUTPUTS, Plan
    from matssl.validate import parse_config

    from .workflow import ROOT, without_timing

    workdir, cfg = workflow_run
    site = [p for p in sys.path if p.endswith("site-packages")]
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    (tmp_path / "bin" / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    bare = subprocess.run(
        ["python", "-c", "import matssl"], env=env | {"PYTHONPATH": os.pathsep.join(site)}, capture_output=True, text=True
    )
    assert bare.returncode != 0 and "No module named 'matssl'" in bare.stderr  # (not installed for this interpreter)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *site])
    monkeypatch.chdir(workdir)
    plan = Plan(parse_config(cfg))
    for kind in ("splits", "graphs", "finetune"):
        stage = next(s for s in plan.stages.values() if s.kind == kind)
        out = tmp_path / kind
        proc = subprocess.run(
            ["python", "-m", "matssl.cli", "stage", kind, "--spec", json.dumps(stage.spec()), "--out", str(out)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        for name in OUTPUTS[kind][:-1]:  # (the manifest records times)
            ours, theirs = out / name, workdir / stage.dir / name
            if name.endswith(".json"):  # (metrics record the run's wall times)
                assert without_timing(json.loads(ours.read_text())) == without_timing(json.loads(theirs.read_text()))
            else:
                digest = [hashlib.sha256(f.read_bytes()).hexdigest() for f in (ours, theirs)]
                assert digest[0] == digest[1], f"{kind}: {name} differs"
