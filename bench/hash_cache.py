"""Re-planning cost over a 100,000-file input folder (every run and every cluster job re-plans the workflow).

    .venv/bin/python bench/hash_cache.py            # writes bench/results/hash_cache.json

Writes a synthetic folder of 100,000 small CIF-named files and a labels CSV, then times `snakemake --dry-run`
(the whole parse and plan, which hashes every external input) twice: with an empty digest cache (every file
read) and warm (one stat() per file). Target: the warm one <= 10 s.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "hash_cache.json"
N = 100_000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "cifs"
        folder.mkdir()
        body = "data_x\n_cell_length_a 4.0\n" + "# padding\n" * 50  # ~0.5 kB each, never parsed by a dry run
        for k in range(N):
            (folder / f"s{k:06d}.cif").write_text(body + str(k))
        (tmp / "labels.csv").write_text("id,y\n" + "".join(f"s{k:06d},{k % 7}\n" for k in range(N)))
        cfg = {
            "results": "results",
            "datasets": {"big": {"kind": "files", "path": str(folder), "labels": str(tmp / "labels.csv")}},
            "pretrain": {"pool": "big", "methods": {"scratch": {"objective": "scratch"}}},
            "properties": {"y": {"dataset": "big", "column": "y"}},
        }
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
        env = {
            **os.environ,
            "MATSSL_CACHE": str(tmp / "cache"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        cmd = [
            str(Path(sys.executable).parent / "snakemake"),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp),
            "--configfile",
            str(tmp / "config.yaml"),
            "--dry-run",
            "--cores",
            "1",
            "--quiet",
        ]
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            run = subprocess.run(cmd, env=env, capture_output=True, text=True)
            times.append(round(time.perf_counter() - t0, 1))
            if run.returncode:
                sys.exit(run.stdout[-2000:] + run.stderr[-2000:])
        shutil.rmtree(folder)
    result = {
        "command": "python bench/hash_cache.py",
        "files": N,
        "dry_run_cold_cache_s": times[0],
        "dry_run_warm_cache_s": times[1],
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
