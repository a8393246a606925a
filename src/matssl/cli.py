"""The `matssl` command line: one subcommand per workflow step, usable without Snakemake.

matssl stage KIND --spec JSON --out DIR     run one content-hashed stage (what the rules call)
matssl property --spec-file F --out FILE    summarise one property's finetuning runs
matssl report --spec-file F --out FILE      write the HTML report
matssl summarize FOLDER... --out DIR        one summary and report of several results folders (or copies of them)
matssl verify [RESULTS]                     check finished stages' files against their manifests
matssl check-config CONFIG                  validate a config file
matssl schema [--check]                     write (or check) workflow/schemas/config.schema.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from matssl.config import json_schema
from matssl.io import InputError

SCHEMA_PATH = Path("workflow/schemas/config.schema.json")


def cmd_stage(args: argparse.Namespace) -> None:
    from matssl.stages import KINDS, runner, write_manifest

    spec = json.loads(args.spec)
    if args.kind not in KINDS or not KINDS[args.kind].outputs:
        raise SystemExit(f"unknown stage kind {args.kind!r}")
    if spec["kind"] != args.kind:
        raise SystemExit(f"spec is for a {spec['kind']} stage, not {args.kind}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # a stage is complete only once its manifest is back
    for stale in out.glob(".tmp-*"):  # half-written files of a job that was killed
        stale.unlink()
    if args.kind in ("pretrain", "finetune", "probe", "predict", "foundation"):
        from matssl.train import keep_freed_memory

        keep_freed_memory()
    # the job's own thread count (Snakemake's {threads}: the rule's, or the profile's set-threads), never part
    # of the spec, so that changing it re-runs nothing
    spec["runtime"] = {**spec.get("runtime", {}), "threads": args.threads}
    if args.gpus:
        from matssl.train import check_gpu_request

        check_gpu_request(args.gpus, spec["runtime"].get("device", "auto"))
    started = time.time()
    logging.info("stage %s %s -> %s (%d threads)", args.kind, spec["key"], out, args.threads)
    extra = runner(args.kind)(spec, out)
    write_manifest(spec, out, started, extra)
    logging.info("stage %s done in %.1f s", args.kind, time.time() - started)


def cmd_property(args: argparse.Namespace) -> None:
    from matssl.stages import runner

    runner("property")(json.loads(Path(args.spec_file).read_text()), Path(args.out))


def cmd_report(args: argparse.Namespace) -> None:
    from matssl.stages import runner

    runner("report")(json.loads(Path(args.spec_file).read_text()), Path(args.out))


def cmd_summarize(args: argparse.Namespace) -> None:
    from matssl.config import read_config
    from matssl.report import write_summary

    config = read_config(args.config) if args.config else None  # (as YAML: the data need not be here)
    runs, a = write_summary(args.folders, Path(args.out), config, args.properties)
    print(
        f"{sum(runs.sources.values())} runs of {len(runs.props)} properties from {len(runs.sources)} folders; "
        f"{len(a.families())} families -> {args.out}/summary.md, summary.json, report.html"
    )


def cmd_verify(args: argparse.Namespace) -> None:
    """Check every finished stage under a results folder against the SHA-256 in its manifest. A damaged stage's
    manifest is set aside, so that the next workflow run re-runs it and everything downstream."""
    from matssl.stages import OUTPUTS, damaged_files, set_aside, unrecorded

    results = Path(args.results)
    if not results.is_dir():
        raise SystemExit(f"{results}: no such results folder")
    stages = sorted(m.parent for m in results.glob("*/*/manifest.json"))
    damaged = {d: bad for d in stages if (bad := damaged_files(d, full=True))}
    for d, bad in damaged.items():
        set_aside(d)
        print(f"DAMAGED {d}: {', '.join(bad)} (manifest set aside: the next run re-makes it and what depends on it)")
    # a stage folder with outputs and no manifest: deleted or set aside by hand, or a job that died before its end
    unfinished = sorted(d for kind in OUTPUTS for d in results.glob(f"{kind}/*") if unrecorded(d) and d not in damaged)
    for d in unfinished:
        print(f"NO MANIFEST {d}: files without the manifest that vouches for them (the next run re-makes it)")
    print(f"{len(stages)} stages checked, {len(damaged)} damaged, {len(unfinished)} without a manifest")
    if damaged or unfinished:
        raise SystemExit(1)


def cmd_check_config(args: argparse.Namespace) -> None:
    from matssl.validate import load_config

    load_config(args.config)  # a missing file, bad YAML or a bad value: a ConfigError, one message
    print(f"{args.config}: valid")


def cmd_schema(args: argparse.Namespace) -> None:
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.check:
        if not SCHEMA_PATH.exists() or SCHEMA_PATH.read_text() != text:
            raise SystemExit(f"{SCHEMA_PATH} is out of date: run `matssl schema`")
        print(f"{SCHEMA_PATH} is current")
        return
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="matssl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stage", help="run one stage")
    p.add_argument("kind")
    p.add_argument("--spec", required=True, help="the stage's JSON spec (from the workflow plan)")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1, help="CPU threads of this job (torch, scikit-learn)")
    p.add_argument("--gpus", type=int, default=0, help="GPUs the job asked for (a SLURM job that sees none fails)")
    p.set_defaults(func=cmd_stage)
    for name, func in (("property", cmd_property), ("report", cmd_report)):
        p = sub.add_parser(name)
        p.add_argument("--spec-file", required=True, help="a JSON file (too large for a command-line argument)")
        p.add_argument("--out", required=True)
        p.set_defaults(func=func)
    p = sub.add_parser("summarize", help="one summary and report of several results folders (or copies of them)")
    p.add_argument("folders", nargs="+", help="folders holding properties/<p>.json and the pretraining stages they name")
    p.add_argument("--out", required=True, help="writes OUT/summary.md, summary.json and report.html")
    p.add_argument("--config", help="the config the runs were made with (its statistics.confirmatory and methods)")
    p.add_argument("--properties", nargs="+", help="only these properties")
    p.set_defaults(func=cmd_summarize)
    p = sub.add_parser("verify", help="check every finished stage's files against its manifest's SHA-256")
    p.add_argument("results", nargs="?", default="results")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("check-config")
    p.add_argument("config")
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("schema")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_schema)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except InputError as err:  # the input's fault (a config, a dataset, a column, a device): said, no traceback
        raise SystemExit(str(err)) from None


if __name__ == "__main__":
    main()
