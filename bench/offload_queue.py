"""Runs a queue that bench/offload.py exported: each finetuning run as its own `matssl stage finetune` process
(as Snakemake would), `--workers` at once, in the queue's order, starting none after `--deadline-s` and stopping
those still running at `--kill-s`; then packs the finished runs, whole, into `runs.NNN.tar` archives of about
`--chunk-mb` each and at most `--max-mb` together (what a lent machine sends back is limited; queue.json names the
runs left out), for bench/offload.py import. Only the standard library here: the machine it runs on has PyTorch
and little else.

    python3 queue/offload_queue.py --queue queue --workers 16 --deadline-s 480 --kill-s 540 --out "$OUT"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path


def pack(finished: list[str], logs: Path, out: Path, chunk: float, most: float) -> tuple[int, list[str]]:
    """Whole runs (every file of a run's folder) into archives runs.NNN.tar of about `chunk` bytes each, each a tar of
    its own (an archive lost in transfer loses its runs only), in the queue's order until `most` bytes; the runs beyond
    are left out (named in queue.json; run them again). The logs go last, as far as they fit."""
    archives: list[list[tuple[Path, str]]] = [[]]
    size, total, left_out = 0, 0, []
    for run in finished:
        files = [(f, f"finetune/{Path(run).name}/{f.name}") for f in sorted(Path(run).iterdir()) if f.is_file()]
        n = sum(f.stat().st_size + 1024 for f, _ in files)
        if total + n > most:
            left_out.append(Path(run).name)
            continue
        if size and size + n > chunk:
            archives.append([])
            size = 0
        archives[-1] += files
        size, total = size + n, total + n
    for log in sorted(logs.iterdir()):
        if total + log.stat().st_size + 1024 <= most:
            archives[-1].append((log, f"logs/{log.name}"))
            total += log.stat().st_size + 1024
    for i, files in enumerate(archives):
        with tarfile.open(out / f"runs.{i:03d}.tar", "w") as tar:
            for f, name in files:
                tar.add(f, arcname=name)
    return len(finished) - len(left_out), left_out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queue", required=True, help="the exported folder")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--deadline-s", type=float, default=480, help="start no run after this many seconds")
    p.add_argument("--kill-s", type=float, default=540, help="stop the runs still going after this many seconds")
    p.add_argument("--gpus", type=int, default=1, help="passed to each run: 1 makes a run without a GPU fail")
    p.add_argument("--out", default=".", help="where the archives go")
    p.add_argument("--chunk-mb", type=float, default=15.0, help="about the size of one archive (MiB; a run is not cut)")
    p.add_argument("--max-mb", type=float, default=60.0, help="the archives together (MiB): the runs beyond stay there")
    args = p.parse_args()
    if args.kill_s < args.deadline_s:
        p.error("--kill-s must not come before --deadline-s")
    q, t0 = Path(args.queue).resolve(), time.time()
    with tarfile.open(q / "inputs.tar") as tar:
        tar.extractall(".", filter="data")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(q / "src"), os.environ.get("PYTHONPATH", "")])}
    queue = [line.split("\t") for line in (q / "jobs.tsv").read_text().splitlines()]  # (key, stage folder)
    jobs = list(queue)
    logs = Path("logs")
    logs.mkdir(exist_ok=True)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    done, failed, stopped, walls = [], [], [], []
    while jobs or running:
        now = time.time() - t0
        while jobs and len(running) < args.workers and now < args.deadline_s:
            key, out = jobs.pop(0)
            spec = (q / "specs" / f"{key}.json").read_text()
            cmd = [
                sys.executable,
                "-m",
                "matssl.cli",
                "stage",
                "finetune",
                "--spec",
                spec,
                "--out",
                out,
                "--threads",
                "1",
                "--gpus",
                str(args.gpus),
            ]
            with open(logs / f"{key}.log", "w") as log:
                running[key] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), time.time())
        if len(failed) >= 4 and not done and jobs:  # the first runs all failed: keep the machine's time for a fix
            print(f"the first {len(failed)} runs failed: {len(jobs)} runs not started", flush=True)
            jobs = []
        if now >= args.deadline_s and jobs:
            print(f"deadline: {len(jobs)} runs not started", flush=True)
            jobs = []
        for key, (proc, started) in list(running.items()):
            if proc.poll() is not None:
                (done if proc.returncode == 0 else failed).append(key)
                walls.append((time.time() - started, key))
                del running[key]
                print(
                    f"{time.time() - t0:6.0f} s  {len(done)} done, {len(failed)} failed: {key} "
                    f"({walls[-1][0]:.0f} s, rc {proc.returncode})",
                    flush=True,
                )
            elif time.time() - t0 > args.kill_s:
                proc.kill()
                proc.wait()
                stopped.append(key)
                del running[key]
        time.sleep(0.5)
    finished = [out for _, out in queue if (Path(out) / "manifest.json").is_file()]
    packed, left_out = pack(finished, logs, Path(args.out), args.chunk_mb * 2**20, args.max_mb * 2**20)
    ok = [w for w, key in walls if key in done]
    summary = {
        "finished": len(finished),
        "packed": packed,
        "failed": failed,
        "stopped": stopped,
        "left_out": left_out,
        "wall_s": round(time.time() - t0, 1),
        "median_run_s": round(sorted(ok)[len(ok) // 2], 1) if ok else None,
    }
    Path(args.out, "queue.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
