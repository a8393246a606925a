"""A stage kind is declared once (matssl.stages.KINDS): its runner, outputs and libraries; the rules are made from it
or checked against it, and its code fingerprint covers every module of the package its runner can reach, so that no
change of a stage's code leaves its key unchanged."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from matssl.stages import KINDS, OUTPUTS, PACKAGE_DIR, code_files, runner

ROOT = Path(__file__).resolve().parents[1]
CACHED = [k for k, v in KINDS.items() if v.outputs]


def rules() -> dict[str, str]:
    """Every rule and checkpoint of the workflow, by name: its text."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    blocks = re.split(r"(?m)^(?=(?:rule|checkpoint) \w+:)", text)
    return {re.match(r"(?:rule|checkpoint) (\w+):", b).group(1): b for b in blocks if re.match(r"(?:rule|checkpoint) ", b)}


def test_every_cached_kind_has_one_rule_made_from_the_table():
    found = rules()
    for kind in CACHED:
        named = [name for name, body in found.items() if f'"python -m matssl.cli stage {kind} ' in body]
        assert named == [kind], f"stage kind {kind}: rules running it {named}"
        body = found[kind]
        for helper in ("stage_outputs", "stage_spec", "stage_dir"):
            assert f'{helper}("{kind}")' in body, f"rule {kind} does not take {helper} of its own kind"
        # (a download reads the network: no input)
        assert f'stage_inputs("{kind}")' in body or "input:" not in body, f"rule {kind}: inputs of another kind"
        assert f"{{RESULTS}}/{kind}/{{{{key}}}}/" not in body, f"rule {kind} spells its outputs out (stage_outputs)"
    # the summaries' rules take their kind's code as a parameter
    for kind in set(KINDS) - set(CACHED):
        assert f'code_fingerprint("{kind}")' in found[kind]


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_kind_runs_with_its_runner_and_its_code_covers_what_the_runner_loads(kind):
    assert callable(runner(kind))
    if kind in OUTPUTS:
        assert OUTPUTS[kind][-1] == "manifest.json"  # (written last: its presence means done)
    # every module of the package loaded by importing the runner is in the kind's code (what a static reading of the
    # imports would miss, a loaded module would show)
    module = KINDS[kind].runner.split(":")[0]
    probe = (
        f"import sys, matssl.{module}; print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
        "if n.startswith('matssl.') and getattr(m, '__file__', None)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    loaded = {Path(f).resolve().relative_to(PACKAGE_DIR.resolve()).as_posix() for f in out}
    assert loaded <= set(code_files(kind)), f"{kind}: loaded but not in its code: {sorted(loaded - set(code_files(kind)))}"


def test_a_change_anywhere_in_a_kind_code_changes_its_fingerprint(monkeypatch, tmp_path):
    """An edit of a module the finetuning runner reaches only through another (sources.py, through evaluate) changes
    finetune's fingerprint; an edit of a module it does not reach (report.py) does not."""
    import shutil

    import matssl.stages as stages

    copy = tmp_path / "matssl"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(stages, "PACKAGE_DIR", copy)
    try:
        for f in (stages.code_files, stages.code_fingerprint):
            f.cache_clear()
        before = stages.code_fingerprint("finetune")
        (copy / "report.py").write_text((copy / "report.py").read_text() + "\n# an edit\n")
        stages.code_fingerprint.cache_clear()
        assert stages.code_fingerprint("finetune") == before
        (copy / "sources.py").write_text((copy / "sources.py").read_text() + "\n# an edit\n")
        stages.code_fingerprint.cache_clear()
        assert stages.code_fingerprint("finetune") != before
    finally:  # (the package's own fingerprints again for every later test)
        for f in (stages.code_files, stages.code_fingerprint):
            f.cache_clear()


def test_every_file_of_the_package_is_code_or_claimed_data():
    """A file beside the modules (a kernel's C source, a template) counts in the code of the kinds whose modules read
    it only if `DATA` names it: none may be left unclaimed."""
    from matssl.stages import DATA

    claimed = {f for patterns in DATA.values() for p in patterns for f in PACKAGE_DIR.glob(p)}
    others = {
        f
        for f in PACKAGE_DIR.rglob("*")
        if f.is_file() and f.suffix not in (".py", ".pyc", ".so") and "__pycache__" not in f.parts
    }
    assert others <= claimed, sorted(str(f.relative_to(PACKAGE_DIR)) for f in others - claimed)
