# The plan of the run: every stage, its content hash, inputs and spec (see src/matssl/stages.py).
import json
import os
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# The workflow's own code, from its source (no install needed): the plan here, and every job, which runs
# `python -m matssl.cli` with it on PYTHONPATH (below). The same command works from a shared environment (.venv), from the
# rules' conda environments (`--sdm conda`, envs/) and from a container.
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from matssl.config import read_config
from matssl.validate import parse_config
from matssl.io import atomic_path, sha256_file
from matssl.stages import (
    OUTPUTS,
    Plan,
    code_fingerprint,
    invalidate_damaged,
    summary_spec_file,
)

# Each rule's software (`--sdm conda`): envs/matssl.yaml, or its CUDA build of torch with MATSSL_TORCH=cuda.
ENV = str(
    Path(workflow.basedir)
    / "envs"
    / (
        "matssl-cuda.yaml"
        if os.environ.get("MATSSL_TORCH") == "cuda"
        else "matssl.yaml"
    )
)
# Jobs find the workflow's code on PYTHONPATH, and without `--sdm conda` run the `python` of the environment that
# runs Snakemake (`.venv/bin/snakemake` without activating the venv too): its bin folder goes first on their PATH
# (with `--sdm conda` the job's environment goes before it). Local and SLURM jobs inherit both. (Set, not required:
# no `envvars:`.)
os.environ.update(
    PATH=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    ),
    PYTHONPATH=os.pathsep.join(
        p for p in [str(SRC), os.environ.get("PYTHONPATH", "")] if p
    ),
)

# Snakemake has read the config files already, keeping the last of a key written twice: each is read again, strictly
for configfile in workflow.configfiles:
    read_config(configfile)
PLAN = Plan(parse_config(config))
RESULTS = PLAN.cfg.results
# Threads of the stages that use every core they get (fingerprints, foundation-model features): a local run caps a
# rule's threads at --cores; on a cluster the profile's set-threads decides. (`workflow.cores` would need --cores,
# which a cluster profile does not give.)
ALL_CORES = 64
# The pool's chain (download, ingest, graphs, augmented views, fingerprints, the splits and the leakage guard, pretraining)
# takes the longest: it goes first, before the short finetuning jobs of encoders already made (probes: 10, finetuning: 0).
# (A priority is the rule's, not its inputs': so it is every dataset's ingest, graphs and splits too, all short.)
CHAIN_PRIORITY = 20

# A finished stage whose files were deleted or truncated since (sizes against its manifest) re-runs,
# and so does everything downstream. Checked once, by the main process, not inside cluster jobs.
if workflow.is_main_process:
    for stage_dir, files in invalidate_damaged(PLAN).items():
        logger.warning(
            f"matssl: {stage_dir} is damaged ({', '.join(files)} missing or changed): it will re-run"
        )


wildcard_constraints:
    key="[^/]+",
    prop="[^/]+",


# A guard not made yet (a new one: another property set, pool or matching): the summaries made before wait on it,
# but Snakemake keeps an existing output whose inputs wait on a checkpoint, so they are set aside as <name>.stale.<ext>
# (re-made from the cached stages in seconds; a dry run only says so).
DRY_RUN = bool(
    workflow.output_settings and workflow.output_settings.dryrun
)  # (workflow.dryrun: not at parse time)
if workflow.is_main_process and PLAN.pending:
    made = [Path(t) for t in (PLAN.report_target, *map(PLAN.property_target, PLAN.cfg.properties),
                              *map(PLAN.prediction_target, PLAN.cfg.predict)) if Path(t).exists()]  # fmt: skip
    if made and DRY_RUN:
        logger.warning(
            f"matssl: the leakage guard runs first; then {len(made)} summaries are re-made (not shown)"
        )
    for t in (
        [] if DRY_RUN else made
    ):  # (kept beside, marked, should the run stop before they are re-made)
        t.replace(t.with_name(f"{t.stem}.stale{t.suffix}"))

# The stage kinds keyed, through pretraining, on the leakage guard's output (see plan()).
AFTER_GUARD = PLAN.after_guard


def plan(kind="pretrain"):
    """The plan, its pretraining keys settled. They are keyed on the content of the leakage guard's exclusion set (so
    that a new property with the same test structures re-runs no pretraining); before the guard has run, asking
    for them makes Snakemake run it first (a checkpoint) and ask again, with the plan made anew. The stages
    before pretraining (`kind` not in AFTER_GUARD) are known without it."""
    global PLAN
    if PLAN.pending and kind in AFTER_GUARD:
        checkpoints.leakage.get(
            key=PLAN.leakage.key
        )  # (raises until the guard is done)
        PLAN = Plan(PLAN.cfg)
    return PLAN


def stage_inputs(kind):
    """A stage's inputs: the manifests of its upstream stages, and its files outside the results folder (the data).
    Those are in the stage's key by their content, so their timestamps are ignored (`ancient`): a copy, a remount
    or a `touch` that leaves the bytes alone re-runs nothing, while new bytes make a new key, a stage not yet made.
    """

    def inputs(wc):
        stage = plan(kind).get(kind, wc.key)
        # (an upstream read by content, the exclusion set's copy: in the key by its digest, its timestamp ignored)
        copies = {f"{stage.upstream_dir(k)}/excluded.json" for k in stage.by_content}
        files = [ancient(f) if f in copies else f for f in stage.upstream_files()]
        return files + [ancient(p) for p in stage.external.values()]

    return inputs


def copy_exclusion(digest, dest, log):
    """Copies this plan's guard's exclusion set to `exclusions/<digest>/` (the guard must have that digest)."""
    if plan().exclusion != digest:
        raise WorkflowError(
            f"matssl: no leakage guard of this config has the exclusion set {digest}"
        )
    source = f"{PLAN.leakage.dir}/excluded.json"
    if (
        sha256_file(source)[:16] != digest
    ):  # (a guard damaged since its manifest: `matssl verify` sets it aside)
        raise WorkflowError(
            f"matssl: {source} is not the exclusion set {digest} its manifest records"
        )
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
    Path(log).write_text(f"{source} -> {dest}\n")


def stage_outputs(kind):
    """A stage kind's outputs (matssl.stages.KINDS), the last one written last."""
    return [f"{RESULTS}/{kind}/{{key}}/{name}" for name in OUTPUTS[kind]]


def stage_spec(kind):
    return lambda wc: json.dumps(plan(kind).get(kind, wc.key).spec())


def summary_spec(name, spec, target):
    """A property's or the report's spec, through a file (see matssl.stages.summary_spec_file)."""
    path, foreign = summary_spec_file(RESULTS, name, spec, target)
    if foreign and workflow.is_main_process:
        logger.warning(
            f"matssl: {target} was made from another config: it will be re-made"
        )
    return path


def stage_dir(kind):
    return lambda wc: plan(kind).get(kind, wc.key).dir
