# The plan of the run: every stage, its content hash, inputs and spec (see src/matssl/stages.py).
import json

from snakemake.logging import logger

from matssl.config import parse_config
from matssl.stages import Plan, code_fingerprint, invalidate_damaged

PLAN = Plan(parse_config(config))
RESULTS = PLAN.cfg.results

# A finished stage whose files were deleted or truncated since (sizes against its manifest) re-runs,
# and so does everything downstream. Checked once, by the main process, not inside cluster jobs.
if workflow.is_main_process:
    for stage_dir, files in invalidate_damaged(PLAN).items():
        logger.warning(
            f"matssl: {stage_dir} is damaged ({', '.join(files)} missing or changed): it will re-run"
        )

ENV = "../../envs/matssl.yaml"


wildcard_constraints:
    key="[^/]+",
    prop="[^/]+",


def stage_inputs(kind):
    return lambda wc: PLAN.get(kind, wc.key).input_files()


def stage_spec(kind):
    return lambda wc: json.dumps(PLAN.get(kind, wc.key).spec())


def stage_dir(kind):
    return lambda wc: PLAN.get(kind, wc.key).dir
