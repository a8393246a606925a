"""Parts of a benchmark that runs longer than one sitting: each part's finetuning results and pretrained encoders,
kept in git (bench/parts/NAME/), merged by bench/summarize_mp.py --parts.

    # after a part's run: one property's summary as the target, or the config's fractions or methods cut
    .venv/bin/python bench/parts.py save --config bench/configs/mp.yaml --name kvrh-scratch --properties log10_K_VRH
    # or the runs of some methods, made by their finetuning targets (scratch's runs saved in another part)
    .venv/bin/python bench/parts.py save --config bench/configs/mp.yaml --name kvrh-negnn --properties log10_K_VRH \
        --methods negnn
    # a later part on another machine: put the saved encoders back, so that pretraining is not run again
    .venv/bin/python bench/parts.py restore --config bench/configs/mp.yaml --name kvrh-scratch
    # every part together, one summary with one Holm family
    .venv/bin/python bench/summarize_mp.py --config bench/configs/mp.yaml --parts kvrh-scratch kvrh-negnn --name mp
    # what of the config's finetuning runs the saved parts hold, and what is left to run
    .venv/bin/python bench/parts.py status --config bench/configs/mp.yaml

A sitting that may end without warning (nothing outside git kept) saves as it goes, each save under a new name and
holding only what no part holds yet: its pretraining stages as they finish (a part for `restore` alone: the
finetuning parts hold the encoders their runs used, and `summarize_mp.py --parts` takes those), and, from another
shell while Snakemake runs, its finished finetuning runs every hour or so. The pool's leakage guard comes first
(`snakemake --until leakage`): the pretraining stages are keyed on it.

    .venv/bin/python bench/parts.py save --config C --name big-pretrain-1 --pretraining    # -2, -3, ... later
    T=$(.venv/bin/python bench/parts.py status --config C --targets --properties jdft2d) && snakemake $T --cores all --configfile C
    .venv/bin/python bench/parts.py save --config C --name big-jdft2d-1 --unsaved --properties jdft2d   # -2, ...
    # the next sitting: the leakage guard, then every saved encoder back (it names the stages it needs first)
    .venv/bin/python bench/parts.py restore --config C --name big-pretrain-1 big-pretrain-2

Never cut a config's properties for a part: their test structures are what the leakage guard removes from the pool,
so they are upstream of every trained encoder, and another property set trains other encoders.

A part holds the config it was run with (config.yaml: a part's config may cut the benchmark's fractions or
methods), per property every run's row of the property summary (the run's metrics, chosen learning rate and
step, and where it ran: device, wall time, the pretraining stage it started from) with the run's finetuning settings,
splits and code, and the pretraining stages those runs used (manifest, history and encoder.pt: ~0.3 MB each for
CGCNN 3 x 64). Not the finetuned models or predictions (a run's model.pt is as large as its encoder, and a benchmark
has thousands of runs). Parts merge only where they are one protocol: per property one set of folds, and over all
properties one set of finetuning settings and finetuning code; per pretrained method (and seed and budget) one
encoder, by the SHA-256 of its bytes; a run in two parts gave the same numbers in both.

A restored encoder is reused only where the later run's plan gives its pretraining stage the same key (the same
pretraining parameters, pool, leakage guard, code and library versions); any change there trains it again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from matssl import (
    SAFE_NAME,
    Plan,
    Runs,
    collect,
    foreign_stage_problems,
    load_config,
    read_json,
    run_id,
    stage_key,
    summarize_property,
)

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "bench" / "parts"
PRETRAIN_FILES = ("encoder.pt", "history.json", "manifest.json")  # the stage's outputs, the manifest last


def part_folders(parts: Path = PARTS) -> list[Path]:
    """The saved parts: folders with a part.json (not a save's unfinished `.tmp-NAME`)."""
    return sorted(p for p in parts.glob("*/") if not p.name.startswith(".") and (p / "part.json").is_file())


def part_summaries(parts: Path = PARTS) -> list[Path]:
    """The property summaries (properties/*.json) of every saved part."""
    return [f for part in part_folders(parts) for f in sorted(part.glob("properties/*.json"))]


def saved_keys(parts: Path = PARTS) -> set[str]:
    """The stage keys of every finetuning run the saved parts hold."""
    return {stage_key(r) for f in part_summaries(parts) for r in read_json(f)["runs"]}


def part_commits(names: list[str], parts: Path = PARTS) -> dict[str, str]:
    """Each saved part's commit (the code that ran it), by name."""
    return {name: read_json(parts / name / "part.json")["commit"] for name in names}


def cut_target(plan, prop: str, methods: list[str], out: Path, skip: set[str] | None = None) -> bool:
    """The property summary of only `methods`' finished runs whose keys are not in `skip`, written to `out` (False
    where there is none): a part of some of a config's methods (a config keeps scratch, whose runs may be saved in
    another part), or of a sitting's runs not saved yet, summarised as the workflow would have."""
    spec = plan.property_spec(prop)  # (a method of a budget sweep: its runs at every budget)
    spec["runs"] = [
        s.dir
        for s in plan.finetune[prop]
        if s.params["base_method"] in methods and s.key not in (skip or ()) and Path(s.done).exists()
    ]
    if not spec["runs"]:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    summarize_property(spec, out)
    return True


def from_root(root: Path, plan, properties: list[str], methods: list[str] | None = None, skip: set[str] | None = None) -> Runs:
    """The runs of `properties` in the plan's results folder (its per-property targets, which name every run's
    pretraining stage) or, given `methods` or keys to `skip` (maybe none), a summary of only the finished runs of
    those methods (all, without `methods`) that are not to be skipped (`cut_target`); a property with none is left
    out."""
    results = root / plan.cfg.results
    if methods is None and skip is None:
        return collect([results], properties)
    methods = methods or list(plan.cfg.pretrain.methods)
    with tempfile.TemporaryDirectory() as tmp:
        kept = [p for p in properties if cut_target(plan, p, methods, Path(tmp) / "properties" / f"{p}.json", skip)]
        if not kept:
            raise SystemExit(f"no finished run of {', '.join(methods)} here" + (" that no saved part holds" if skip else ""))
        (Path(tmp) / "pretrain").symlink_to((results / "pretrain").resolve())
        runs = collect([tmp], kept)
    runs.pretrain_dirs = {k: results / "pretrain" / k for k in runs.pretrain_dirs}  # (not the temporary folder's link)
    return runs


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def saved_stages(parts: Path = PARTS) -> set[str]:
    """The pretraining stages (folder names, i.e. keys) the saved parts hold."""
    return {p.name for part in part_folders(parts) for p in part.glob("pretrain/*") if (p / "manifest.json").is_file()}


def save(args: argparse.Namespace, plan) -> None:
    root, parts = Path.cwd(), Path(args.parts_dir)
    folder = parts / args.name[0]
    if folder.exists():
        raise SystemExit(f"{folder} exists: a part is written once (remove it to write it again)")
    if args.pretraining:  # the finished pretraining stages no part holds yet, for `restore`; no finetuning runs
        held, props, used = saved_stages(parts), {}, {}
        for s in plan.stages.values():
            if s.kind == "pretrain" and s.key not in held and Path(s.done).is_file():
                # checked as restore will check it: a damaged stage saved would count as held, and never be restored
                problems = foreign_stage_problems(s, s.dir)
                if problems:
                    print(f"not saved: {s.key}: {'; '.join(problems)}")
                else:
                    used[s.key] = Path(s.dir)
        if not used:
            raise SystemExit("no finished pretraining stage here that no saved part holds")
    else:
        skip = saved_keys(parts) if args.unsaved else None
        runs = from_root(root, plan, args.properties or list(plan.cfg.properties), args.methods, skip)
        props, used = runs.props, {key: runs.pretrain_dirs[key] for key in runs.used}
    tmp = folder.with_name(f".tmp-{folder.name}")  # renamed into place when whole (not a part until then)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_part(tmp, args, root, props, used)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(folder)
    n = sum(len(d["runs"]) for d in props.values())
    print(f"saved {n} runs of {sorted(props)} and {len(used)} pretraining stages to {folder}")


def write_part(tmp: Path, args: argparse.Namespace, root: Path, props: dict[str, dict], used: dict[str, Path]) -> None:
    (tmp / "properties").mkdir(parents=True)
    (tmp / "pretrain").mkdir()
    for prop, d in props.items():
        (tmp / "properties" / f"{prop}.json").write_text(json.dumps(d, indent=1) + "\n")
    for key, src in used.items():
        (tmp / "pretrain" / key).mkdir()
        for name in PRETRAIN_FILES:  # (scratch's encoder.pt is a random start, which its runs redraw: small all the same)
            shutil.copyfile(src / name, tmp / "pretrain" / key / name)
    meta = {
        "name": args.name[0],
        "config": args.config,
        "commit": args.commit or git_commit(),
        "root": str(root),
        "properties": sorted(props),
        "n_runs": {p: len(d["runs"]) for p, d in props.items()},
        "pretrain": sorted(used),
        "saved": time.strftime("%Y-%m-%d"),
        "host": socket.gethostname(),
    }
    (tmp / "part.json").write_text(json.dumps(meta, indent=1) + "\n")
    shutil.copyfile(args.config_file, tmp / "config.yaml")


def restore(args: argparse.Namespace, plan) -> None:
    """Copies a part's pretraining stages into the results folder where this plan has a stage of the same key and the
    saved stage passes the checks of a stage made here (`foreign_stage_problems`: its key recomputed from its
    manifest, encoder.pt and history.json matching its size and SHA-256; the reasons printed otherwise), dated just
    after their newest input (the pool's graphs, the leakage guard, fingerprints): Snakemake takes them as up to
    date, and finetuning runs already made from them stay so. Those inputs must exist first. Several parts: the
    stages of each (a stage in two parts is the same stage, by its key and the checks)."""
    wanted = {s.key: s for s in plan.stages.values() if s.kind == "pretrain"}
    saved = []
    for name in args.name:
        folder = Path(args.parts_dir) / name
        if not (folder / "part.json").is_file():
            raise SystemExit(f"{folder}: no saved part there")
        saved += sorted(p for p in (folder / "pretrain").glob("*") if p.is_dir() and not p.is_symlink())
    ours = [(src, wanted[src.name]) for src in saved if src.name in wanted]
    missing = sorted({f for _, stage in ours for f in stage.upstream_files() if not Path(f).exists()})
    if missing:
        raise SystemExit(
            f"make the pretraining stages' inputs first:\n  snakemake --cores all {' '.join(missing)} --configfile {args.config}"
        )
    copied = []
    for src, stage in ours:
        dest = Path(stage.dir)
        if (dest / "manifest.json").exists():
            continue
        problems = foreign_stage_problems(stage, src)
        if problems:
            print(f"refused {src.name}: {'; '.join(problems)} (it will be trained again)")
            continue
        dest.mkdir(parents=True, exist_ok=True)
        when = max((Path(f).stat().st_mtime for f in stage.upstream_files()), default=time.time()) + 1
        for name in PRETRAIN_FILES:  # the manifest last: its presence means done
            shutil.copyfile(src / name, dest / name)
            os.utime(dest / name, (when, when))
        copied.append(src.name)
    print(f"restored {len(copied)} pretraining stages: {', '.join(copied) or 'none'}")
    other = sorted({src.name for src in saved if src.name not in wanted})
    if other:
        print(f"not in this plan (other settings, code or library versions; they will be trained again): {', '.join(other)}")


def status(args: argparse.Namespace, plan) -> None:
    """Prints, per property and label fraction, how many of the plan's finetuning runs the saved parts hold (by stage
    key: a run saved from other code or settings does not count, but is named with its part's commit), and per method
    and pretraining seed what is left; with `--targets`, only what is left (of `--properties` and `--methods`) as
    Snakemake's targets, one a line, and exit status 1 where nothing is left (so that `T=$(...) && snakemake $T` never
    runs Snakemake without targets, i.e. everything)."""
    saved = saved_keys(Path(args.parts_dir))
    if args.targets:
        props, methods = args.properties or list(plan.finetune), args.methods or list(plan.cfg.pretrain.methods)
        left = [s.done for p in props for s in plan.finetune[p] if s.key not in saved and s.params["base_method"] in methods]
        if not left:
            raise SystemExit(f"every finetuning run of {', '.join(props)} ({', '.join(methods)}) is saved")
        print("\n".join(left))
        return
    elsewhere: dict[tuple, set[str]] = {}  # (property, run id) -> the commits of the parts holding it, any code or settings
    for f in part_summaries(Path(args.parts_dir)):
        commit = read_json(f.parents[1] / "part.json")["commit"]
        for r in read_json(f)["runs"]:
            elsewhere.setdefault((f.stem, run_id(r)), set()).add(commit)
    total = done = 0
    for prop, stages in plan.finetune.items():
        print(prop)
        for frac in plan.cfg.finetune.fractions:
            cell: dict[str, list[int]] = {}  # method (and pretraining seed) -> [saved, planned]
            other: Counter[str] = Counter()  # commit -> runs of this cell saved from other code or settings
            for s in stages:
                if s.params["fraction"] == frac:
                    if s.key not in saved:
                        other.update(elsewhere.get((prop, run_id(s.params)), ()))
                    name = s.params["method"] + (f" ps{s.params['pretrain_seed']}" if s.params["pretrain_seed"] else "")
                    n = cell.setdefault(name, [0, 0])
                    n[0] += s.key in saved
                    n[1] += 1
            have, want = sum(n[0] for n in cell.values()), sum(n[1] for n in cell.values())
            left = ", ".join(f"{m} {a}/{b}" for m, (a, b) in cell.items() if a < b)
            print(
                f"  {frac:g} of the labels: {have}/{want} saved"
                + (f"; to run: {left}" if left else "")
                + (
                    f"; saved from other code or settings: {', '.join(f'{n} at {c}' for c, n in sorted(other.items()))}"
                    if other
                    else ""
                )
            )
            total, done = total + want, done + have
    print(f"{done} of {total} finetuning runs saved in {args.parts_dir}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["save", "restore", "status"])
    parser.add_argument("--config", required=True, help="the benchmark's config, as the part was run with it")
    parser.add_argument("--name", nargs="+", help="save: the part, bench/parts/NAME; restore: one or more parts")
    parser.add_argument(
        "--root",
        default=".",
        help="the folder the run was made in, where its config's relative paths start (default: the current folder)",
    )
    parser.add_argument("--properties", nargs="+", help="save, status --targets: only these properties of the config")
    parser.add_argument(
        "--methods",
        nargs="+",
        help="save: only these methods' finished runs (their other runs, and "
        "the config's other methods, saved in other parts or left to run); status --targets: only theirs",
    )
    parser.add_argument(
        "--unsaved",
        action="store_true",
        help="save: only the finished runs no part in bench/parts holds yet (a sitting's progress, saved as it goes)",
    )
    parser.add_argument(
        "--pretraining",
        action="store_true",
        help="save: only the finished pretraining stages no part holds yet, no finetuning runs (for restore)",
    )
    parser.add_argument("--targets", action="store_true", help="status: what is left, as Snakemake's targets")
    parser.add_argument("--commit", help="save: the commit of the code that ran the part (default: this checkout's HEAD)")
    parser.add_argument("--parts-dir", default=str(PARTS), help=argparse.SUPPRESS)  # (tests write elsewhere)
    args = parser.parse_args(argv)
    if args.action != "status" and not args.name:
        parser.error(f"{args.action} needs --name")
    if args.action == "save" and len(args.name) > 1:
        parser.error("save writes one part: one --name")
    if args.pretraining and (args.unsaved or args.methods or args.properties):
        parser.error("save --pretraining saves pretraining stages alone: no --unsaved, --methods or --properties")
    for name in args.name or []:
        if not SAFE_NAME.fullmatch(name) or ".." in name:
            parser.error(f"--name {name!r}: a part's name is letters, digits, '_', '.' and '-' (a folder of bench/parts)")

    args.config_file, args.parts_dir = Path(args.config).resolve(), Path(args.parts_dir).resolve()
    os.chdir(args.root)  # the config's results folder and data paths are relative to the run's folder
    plan = Plan(load_config(args.config_file))
    for flag, given, known in (
        ("properties", args.properties, plan.cfg.properties),
        ("methods", args.methods, plan.cfg.pretrain.methods),
    ):
        unknown = sorted(set(given or []) - set(known))
        if unknown:
            raise SystemExit(f"--{flag} {unknown}: not {flag} of this config ({', '.join(known)})")
    if plan.pending:  # (the pretraining stages are keyed on the leakage guard's output)
        raise SystemExit(f"run the leakage guard first: snakemake --cores all --until leakage --configfile {args.config}")
    {"save": save, "restore": restore, "status": status}[args.action](args, plan)


if __name__ == "__main__":
    sys.exit(main())
