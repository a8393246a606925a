"""Runs a queue that bench/offload.py exported: each finetuning run as its own `matssl stage finetune` process
(as Snakemake would), `--workers` at once, in the queue's order, starting none after `--deadline-s` and stopping
those still running at `--kill-s`; then packs every finished run (and every log) into `runs.tar.NN` archives of at
most `--chunk-mb` each, for bench/offload.py import. Only the standard library here: the machine it runs on has
PyTorch and little else.

    python3 q/offload_queue.py --queue q --workers 16 --deadline-s 480 --kill-s 540 --out "$OUT"
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queue", required=True, help="the exported folder")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--deadline-s", type=float, default=480, help="start no run after this many seconds")
    p.add_argument("--kill-s", type=float, default=540, help="stop the runs still going after this many seconds")
    p.add_argument("--gpus", type=int, default=1, help="passed to each run: 1 makes a run without a GPU fail")
    p.add_argument("--out", default=".", help="where the archives go")
    p.add_argument("--chunk-mb", type=float, default=15.0, help="the size of one archive")
    p.add_argument("--max-mb", type=float, default=60.0, help="the archives together (model.pt files left out beyond)")
    args = p.parse_args()
    q, t0 = Path(args.queue).resolve(), time.time()
    with tarfile.open(q / "inputs.tar") as tar:
        tar.extractall(".", filter="data")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(q / "src"), os.environ.get("PYTHONPATH", "")])}
    jobs = [line.split("\t") for line in (q / "jobs.tsv").read_text().splitlines()]
    logs = Path("logs")
    logs.mkdir(exist_ok=True)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    done, failed, stopped, walls = [], [], [], []
    while jobs or running:
        now = time.time() - t0
        while jobs and len(running) < args.workers and now < args.deadline_s:
            key, out = jobs.pop(0)
            spec = (q / "specs" / f"{key}.json").read_text()
            cmd = [sys.executable, "-m", "matssl.cli", "stage", "finetune", "--spec", spec, "--out", out,
                   "--threads", "1", "--gpus", str(args.gpus)]  # fmt: skip
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
                walls.append(time.time() - started)
                del running[key]
                print(f"{time.time() - t0:6.0f} s  {len(done)} done, {len(failed)} failed: {key} "
                      f"({walls[-1]:.0f} s, rc {proc.returncode})", flush=True)  # fmt: skip
            elif time.time() - t0 > args.kill_s:
                proc.kill()
                proc.wait()
                stopped.append(key)
                del running[key]
        time.sleep(0.5)
    finished = [out for key, out in (line.split("\t") for line in (q / "jobs.tsv").read_text().splitlines())
                if (Path(out) / "manifest.json").is_file()]  # fmt: skip
    # every run's metrics, predictions and manifest, and its model.pt while the archives stay under --max-mb (what
    # comes back from a lent machine is limited; a run without its model.pt serves a summary, not a prediction)
    files = [(f, f"finetune/{Path(out).name}/{f.name}") for out in finished for f in sorted(Path(out).iterdir())]
    files += [(f, f"logs/{f.name}") for f in sorted(logs.iterdir())]
    budget = args.max_mb * 1e6 - sum(f.stat().st_size + 1024 for f, _ in files if f.name != "model.pt")
    left_out = 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f, name in files:
            if f.name == "model.pt":
                budget -= f.stat().st_size + 1024
                if budget < 0:
                    left_out += 1
                    continue
            tar.add(f, arcname=name)
    data, size = buf.getvalue(), int(args.chunk_mb * 2**20)
    for i in range(0, len(data), size):
        Path(args.out, f"runs.tar.{i // size:02d}").write_bytes(data[i : i + size])
    summary = {"finished": len(finished), "failed": failed, "stopped": stopped, "wall_s": round(time.time() - t0, 1),
               "median_run_s": sorted(walls)[len(walls) // 2] if walls else None, "archive_mb": round(len(data) / 1e6, 1),
               "models_left_out": left_out}  # fmt: skip
    Path(args.out, "queue.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
