"""The pretraining pool's stages at scale: wall time and peak memory of ingest, graphs, augmented views, fingerprints and
the leakage guard on a large pool (issue 42: every stage of the 154,141-structure pool within 8 GiB).

    .venv/bin/python bench/pool_stages.py [--config bench/configs/mp_large.yaml] [--cores 2]

Runs Snakemake for the pool's stages (and the downstream sets' ingest and splits the guard reads), then
reads each stage's manifest: its wall time, the peak resident memory of the job and of its largest child process
(fingerprints and the guard's matching use worker processes: their peak is the sum of the job's and its workers'
at most; a forked child counts the pages it shares with the job, so the sum is an upper bound, and a stage without
workers can show a child as large as itself, a short subprocess forked late), the structures it kept and rejected,
and why. Stages already made are read, not run again (the cache).
Writes bench/results/pool_stages.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from matssl import Plan, load_config, read_json

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("ingest", "graphs", "augment", "fingerprints", "leakage")
LIMIT_MB = 8 * 1024


def excluded(stage_dir: Path) -> int:
    """Pool structures the guard excludes, by any criterion."""
    return len(set().union(*read_json(stage_dir / "excluded.json").values()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="bench/configs/mp_large.yaml")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    cfg = load_config(args.config)
    plan = Plan(cfg)
    pool = cfg.pretrain.pool
    stages = {s.kind: s for s in plan.stages.values() if s.kind in KINDS and s.label == pool}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # the stages' own files as targets (`--until` would miss the pool's graphs, views and fingerprints: the jobs that
    # read them wait for the guard, a checkpoint)
    targets = [f"{s.dir}/manifest.json" for s in stages.values()]
    cmd = ["snakemake", *targets, "--cores", str(args.cores), "--configfile", args.config]  # (it takes several files)
    t0 = time.perf_counter()
    run = subprocess.run(cmd, cwd=ROOT, env=env)
    if run.returncode:
        sys.exit(f"{' '.join(cmd)} failed (the stage logs are under {cfg.results}/logs)")
    rows = {}
    for kind, stage in stages.items():
        m = read_json(ROOT / stage.dir / "manifest.json")
        rejected = ROOT / stage.dir / "rejected.parquet"
        reasons = Counter()
        if rejected.exists():
            reasons = Counter(r.split(" (")[0] for r in pq.read_table(rejected, columns=["reason"])["reason"].to_pylist())
        worker = m.get("peak_memory_child_mb", 0.0)  # the largest worker process
        workers = m.get("runtime", {}).get("threads", 1) if worker else 0
        rows[kind] = {
            "stage": stage.key,
            "wall_s": m["wall_s"],
            "peak_memory_mb": m["peak_memory_mb"],
            "peak_memory_child_mb": worker,
            "workers": workers,
            "within_8_gib": m["peak_memory_mb"] + worker * workers <= LIMIT_MB,
            **{k: m[k] for k in ("n_structures", "n_graphs", "n_views", "n_atoms", "n_rejected", "n_test") if k in m},
            **({"n_excluded": excluded(ROOT / stage.dir)} if kind == "leakage" else {}),
            "rejected": dict(reasons.most_common()),
        }
    record = {
        "command": f"python bench/pool_stages.py --config {args.config} --cores {args.cores}",
        "date": time.strftime("%Y-%m-%d"),
        "cores": args.cores,
        "pool": cfg.datasets[pool].path,
        "wall_s_this_call": round(time.perf_counter() - t0, 1),
        "stages": rows,
    }
    out = ROOT / "bench" / "results" / "pool_stages"
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"Pool stages of `{record['pool']}`, {args.cores} cores (`{record['command']}`)",
        "",
        "| stage | wall (s) | peak memory (MB): job | largest worker process | job + workers within 8 GiB | kept | rejected (why) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, r in rows.items():
        kept = r.get("n_structures", r.get("n_graphs", r.get("n_views", "")))
        if kind == "leakage":
            kept = f"{r['n_excluded']} pool structures excluded"
        elif kind == "fingerprints":
            kept = f"{r['n_atoms']} atoms"
        why = ", ".join(f"{n} {reason}" for reason, n in r["rejected"].items()) or (
            "no reason recorded" if r.get("n_rejected") else "–"
        )
        lines.append(
            f"| {kind} | {r['wall_s']:.0f} | {r['peak_memory_mb']:.0f} | {r['peak_memory_child_mb']:.0f} | "
            f"{'yes' if r['within_8_gib'] else 'no'} | {kept} | {r.get('n_rejected', 0)} ({why}) |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
