"""Wall time of the demo pipeline from nothing, and of a rerun that has nothing to do.

    .venv/bin/python bench/demo.py            # writes bench/results/demo.json

Runs `snakemake --cores <n> all` with the repository's config.yaml into a fresh results folder
(`results-bench/`, removed first and kept after), then the same command again.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "demo.json"


def timed(cmd: list[str]) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # the venv's matssl
    t0 = time.perf_counter()
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if run.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    cores = os.cpu_count() or 1
    results = "results-bench"
    shutil.rmtree(ROOT / results, ignore_errors=True)
    snake = [str(Path(sys.executable).parent / "snakemake"), "all", "--cores", str(cores), "--config", f"results={results}"]
    first = timed(snake)
    rerun = timed(snake)
    manifests = [json.loads(p.read_text()) for p in (ROOT / results).glob("*/*/manifest.json")]
    by_kind: dict[str, float] = {}
    for m in manifests:
        by_kind[m["kind"]] = by_kind.get(m["kind"], 0.0) + m["wall_s"]
    record = {
        "command": "python bench/demo.py",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cores": cores, "processor": platform.processor() or platform.machine(), "python": platform.python_version()},
        "demo_wall_s": round(first, 1),
        "rerun_nothing_to_do_s": round(rerun, 1),
        "stage_wall_s_summed": {k: round(v, 1) for k, v in sorted(by_kind.items())},
        "n_jobs": len(manifests),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    print(f"the demo's report: {results}/report.html")


if __name__ == "__main__":
    main()
