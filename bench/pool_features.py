"""Graph construction and fingerprints on the 36,737-structure Materials Project pool, with memory.

    .venv/bin/python bench/pool_features.py                 # writes bench/results/pool_features.json
    .venv/bin/python bench/pool_features.py --fingerprint-sample 36737   # fingerprints for the whole pool

Each measurement runs in its own process (one core), so its peak resident memory is its own: reading
the pool, building every graph (the `graphs` stage's work) and saving the GraphSet; and the
species-agnostic ACSF + SOAP fingerprints of a seeded random sample of the pool (all of it takes
~8 minutes on one core).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT.parent / "shared" / "data" / "mp_pool" / "mp_cgcnn_36737.extxyz.gz"
OUT = ROOT / "bench" / "results" / "pool_features.json"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_pool():
    from matssl.sources import read_extxyz
    from matssl.table import Crystal

    t0 = time.perf_counter()
    crystals = [c for c in read_extxyz(POOL) if isinstance(c, Crystal)]
    return crystals, time.perf_counter() - t0


def graphs_job(queue, tmp: str) -> None:
    import torch

    from matssl.graphs import GraphSet

    torch.set_num_threads(1)
    crystals, read_s = read_pool()
    t0 = time.perf_counter()
    graphs, rejected = GraphSet.build(crystals, cutoff=8.0, k=12)
    build_s = time.perf_counter() - t0
    graphs.save(Path(tmp) / "graphs.npz")
    size = (Path(tmp) / "graphs.npz").stat().st_size
    queue.put({"structures": len(crystals), "atoms": int(graphs.ptr[-1]), "rejected": len(rejected), "read_s": round(read_s, 1),
               "build_s": round(build_s, 1), "structures_per_s": round(len(crystals) / build_s, 1),
               "graphs_npz_mb": round(size / 2**20, 1), "peak_memory_mb": round(peak_mb(), 1)})  # fmt: skip


def fingerprints_job(queue, n: int) -> None:
    import numpy as np

    from matssl import fingerprints
    from matssl.config import FingerprintConfig

    crystals, _ = read_pool()
    pick = np.sort(np.random.default_rng(0).permutation(len(crystals))[:n])
    sample = [crystals[i] for i in pick]
    t0 = time.perf_counter()
    table = fingerprints.compute(sample, FingerprintConfig())
    wall = time.perf_counter() - t0
    queue.put({"structures": len(sample), "atoms": table.num_rows, "wall_s": round(wall, 1),
               "atoms_per_s": round(table.num_rows / wall, 1), "peak_memory_mb": round(peak_mb(), 1)})  # fmt: skip


def in_process(target, *args) -> dict:
    queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=target, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser()
    parser.add_argument("--fingerprint-sample", type=int, default=3000, help="structures to fingerprint")
    args = parser.parse_args()
    if not POOL.exists():
        raise SystemExit(f"{POOL} not found: this benchmark reads ../shared/data (see its README)")
    with tempfile.TemporaryDirectory() as tmp:
        graphs = in_process(graphs_job, tmp)
    print("graphs", graphs)
    fps = in_process(fingerprints_job, args.fingerprint_sample)
    print("fingerprints", fps)
    result = {"pool": str(POOL.name), "host": platform.node(), "cpu_count": mp.cpu_count(), "date": time.strftime("%Y-%m-%d"),
              "graphs": {"cutoff": 8.0, "max_neighbors": 12, **graphs},
              "fingerprints": {"kinds": ["acsf", "soap"], **fps}}  # fmt: skip
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
