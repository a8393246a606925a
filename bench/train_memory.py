"""What `train.keep_freed_memory` does to a CPU training step: our CGCNN alone in a fresh process, as a
training stage runs it, once with glibc's default allocator settings and once with freed memory kept.

    .venv/bin/python bench/train_memory.py [--threads 2] [--steps 40] [--repeats 3]

Each setting runs in its own process (the setting cannot be undone), alternating, `--repeats` times;
the script records the median ms per step (forward + backward + AdamW step, batch 128, after 5 warm-up
steps) and the page faults per step of each. Needs the demo's graphs (any `results/graphs/*/graphs.npz`).
Writes bench/results/train_memory.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(keep: bool, threads: int, steps: int) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from matssl import CGCNN, GraphSet, Regressor, keep_freed_memory, kernels

    if keep:
        keep_freed_memory()
    torch.set_num_threads(threads)
    graphs = GraphSet.load(sorted(glob.glob(str(ROOT / "results/graphs/*/graphs.npz")))[0])
    rng = np.random.default_rng(0)
    batches = [graphs.batch(rng.choice(len(graphs), 128, replace=False)) for _ in range(10)]
    targets = [torch.randn(128, generator=torch.Generator().manual_seed(k)) for k in range(10)]
    torch.manual_seed(0)
    model = Regressor(CGCNN())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(k: int) -> None:
        loss = F.l1_loss(model(batches[k % 10]), targets[k % 10])
        opt.zero_grad()
        loss.backward()
        opt.step()

    for k in range(5):
        step(k)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for k in range(steps):
        step(k)
    seconds = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"ms_per_step": seconds / steps * 1e3, "page_faults_per_step": faults / steps, "cpu_kernel": kernels.available()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one_run(args.child == "keep", args.threads, args.steps)))
        return
    runs: dict[str, list[dict]] = {"default": [], "keep": []}
    for _ in range(args.repeats):
        for name in runs:
            cmd = [sys.executable, __file__, "--child", name, "--threads", str(args.threads), "--steps", str(args.steps)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    summary = {
        name: {
            "ms_per_step_median": round(statistics.median(r["ms_per_step"] for r in rs), 1),
            "ms_per_step_runs": [round(r["ms_per_step"], 1) for r in rs],
            "page_faults_per_step_median": round(statistics.median(r["page_faults_per_step"] for r in rs), 1),
        }
        for name, rs in runs.items()
    }
    result = {
        "command": f"python bench/train_memory.py --threads {args.threads} --steps {args.steps} --repeats {args.repeats}",
        "date": time.strftime("%Y-%m-%d"),
        "cpu_kernel": "compiled" if runs["keep"][0]["cpu_kernel"] else "pytorch",
        "default_allocator": summary["default"],
        "keep_freed_memory": summary["keep"],
        "step_time_saved": round(1 - summary["keep"]["ms_per_step_median"] / summary["default"]["ms_per_step_median"], 3),
    }
    (ROOT / "bench/results/train_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
