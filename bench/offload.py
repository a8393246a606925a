"""Finetuning runs of a benchmark on a machine without Snakemake (a GPU machine lent for minutes): `export` writes the
runs that the plan still lacks as a queue (each run's spec, the stage folders it reads, the matssl code that plans
them), `bench/offload_queue.py` runs the queue there, many runs at once until a deadline, and `import` puts the
finished runs back into the results folder, where Snakemake and bench/parts.py take them as made here.

    # here, once the runs' inputs exist (graphs, splits, features; pretraining restored by bench/parts.py restore)
    .venv/bin/python bench/offload.py export --config bench/configs/mp.yaml --properties dielectric --out /tmp/queue
    # there, from the folder holding the queue (only PyTorch, NumPy, pandas, pyarrow, scikit-learn, pydantic and
    # pymatgen-core are needed; no Snakemake)
    python3 queue/offload_queue.py --queue queue --workers 16 --deadline-s 480 --out DIR
    # here again, with the archives it wrote (runs.NNN.tar)
    .venv/bin/python bench/offload.py import --config bench/configs/mp.yaml --archives DIR

A run keeps its key (planned here, from this machine's library versions); its manifest records where it ran (host,
device, the versions there), which bench/parts.py carries into the part, so the summary says which numbers came
from where. Runs already finished here or saved in a part (bench/parts) are not exported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

from matssl import Plan, foreign_stage_problems, load_config
from parts import PARTS, saved_keys

BENCH = Path(__file__).resolve().parent


def export(args: argparse.Namespace, plan: Plan) -> None:
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists: export into a new folder")
    saved = saved_keys(Path(args.parts_dir))
    order = {m: i for i, m in enumerate(args.methods or plan.cfg.pretrain.methods)}
    jobs = []
    for prop in args.properties:
        stages = [
            s
            for s in plan.finetune[prop]
            if not Path(s.done).exists()
            and s.key not in saved
            and (not args.methods or s.params["method"] in args.methods)
            and (not args.fractions or s.params["fraction"] in args.fractions)
        ]
        # method by method, so that a queue cut by its deadline leaves whole methods done
        stages.sort(
            key=lambda s: (
                order.get(s.params["method"], len(order)),
                s.params["pretrain_seed"],
                s.params["fraction"],
                s.params["fold"],
                s.params["seed"],
            )
        )
        jobs += stages
    if not jobs:
        raise SystemExit("nothing to export: every run asked for is finished or saved")
    foundation = [s.key for s in jobs if s.params.get("foundation")]
    if foundation:
        raise SystemExit(f"runs that train a foundation model whole need its package there too: {foundation[:3]}")
    specs = {s.key: s.spec() for s in jobs}
    inputs = sorted({d for spec in specs.values() for d in spec["upstream"].values()})
    if Path(plan.cfg.results).is_absolute():
        raise SystemExit(f"results: {plan.cfg.results} is absolute: the queue runs in another folder, give it relative")
    missing = [d for d in inputs if not (Path(d) / "manifest.json").is_file()]
    if missing:
        raise SystemExit(
            "make the runs' inputs first:\n  snakemake --cores all "
            + " ".join(f"{d}/manifest.json" for d in missing)
            + f" --configfile {args.config}"
        )
    (out / "specs").mkdir(parents=True)
    with tarfile.open(out / "inputs.tar", "w") as tar:
        for d in inputs:
            tar.add(d)
    shutil.copytree(
        Path(sys.modules["matssl"].__file__).parent, out / "src" / "matssl", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(BENCH / "offload_queue.py", out / "offload_queue.py")
    with open(out / "jobs.tsv", "w") as f:
        for s in jobs:
            (out / "specs" / f"{s.key}.json").write_text(json.dumps(specs[s.key]))
            f.write(f"{s.key}\t{s.dir}\n")
    mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    print(f"{len(jobs)} runs of {', '.join(args.properties)} reading {len(inputs)} stage folders: {out} ({mb:.1f} MB)")


def import_(args: argparse.Namespace, plan: Plan) -> None:
    """Unpacks the queue's archives (finetune/KEY/ folders) where the plan has those stages: a run that passes the
    checks of a stage made here only (`foreign_stage_problems`: its key recomputed from its manifest, every output
    listed and matching its size and SHA-256; the reasons printed otherwise), dated now with its manifest last (its
    presence means done), so that Snakemake takes it as newer than its inputs; a run already here is left as it is.
    An archive with a member outside its folder or a link out of it is refused whole."""
    wanted = {s.key: s for stages in plan.finetune.values() for s in stages}
    archives = sorted(Path(args.archives).glob("runs.*.tar"))
    if not archives:
        raise SystemExit(f"no runs.*.tar in {args.archives}")
    staging = Path(plan.cfg.results) / ".offload"
    shutil.rmtree(staging, ignore_errors=True)
    count = dict.fromkeys(("imported", "here already", "not this plan's", "refused"), 0)
    try:
        for archive in archives:
            try:
                with tarfile.open(archive) as tar:
                    tar.extractall(staging, filter="data")  # refuses members outside the folder and links out of it
            except (tarfile.TarError, OSError) as err:
                raise SystemExit(f"{archive}: refused, nothing imported ({type(err).__name__}: {err})") from None
        for d in sorted((staging / "finetune").glob("*")):
            stage = wanted.get(d.name)
            dest = Path(stage.dir) if stage else None
            problems = (
                []
                if stage is None or (dest / "manifest.json").exists()
                else (["a link, not a folder"] if d.is_symlink() or not d.is_dir() else foreign_stage_problems(stage, d))
            )
            why = (
                "not this plan's"
                if stage is None
                else "here already"
                if (dest / "manifest.json").exists()
                else "refused"
                if problems
                else "imported"
            )
            count[why] += 1
            if problems:
                print(f"refused {d.name}: {'; '.join(problems)}")
            if why != "imported":
                continue
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(d, dest)
            now = time.time()
            for f in dest.iterdir():
                os.utime(f, (now + (f.name == "manifest.json"),) * 2)
        logs = Path(plan.cfg.results) / "logs" / "finetune"
        logs.mkdir(parents=True, exist_ok=True)
        for log in (staging / "logs").glob("*.log"):
            if log.is_file() and not log.is_symlink():
                shutil.copyfile(log, logs / log.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(", ".join(f"{n} {what}" for what, n in count.items() if n or what == "imported"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["export", "import"])
    parser.add_argument("--config", required=True, help="the benchmark's config (run from the folder it is run in)")
    parser.add_argument("--properties", nargs="+", help="export: these properties' runs, in this order")
    parser.add_argument("--methods", nargs="+", help="export: only these methods, in this order (default: all, in the config's)")
    parser.add_argument("--fractions", nargs="+", type=float, help="export: only these label fractions")
    parser.add_argument("--out", help="export: the queue's folder (new)")
    parser.add_argument("--archives", help="import: the folder holding the queue's runs.*.tar archives")
    parser.add_argument("--parts-dir", default=str(PARTS), help=argparse.SUPPRESS)  # (tests write elsewhere)
    args = parser.parse_args(argv)
    plan = Plan(load_config(args.config))
    if plan.pending:  # (the pretraining stages are keyed on the leakage guard's output)
        raise SystemExit(f"run the leakage guard first: snakemake --cores all --until leakage --configfile {args.config}")
    if args.action == "export":
        if not args.properties or not args.out:
            parser.error("export needs --properties and --out")
        export(args, plan)
    else:
        if not args.archives:
            parser.error("import needs --archives")
        import_(args, plan)


if __name__ == "__main__":
    main()
