# The plan of the run: every stage, its content hash, inputs and spec (see src/matssl/stages.py).
import json

from matssl.config import parse_config
from matssl.stages import Plan

PLAN = Plan(parse_config(config))
RESULTS = PLAN.cfg.results
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
