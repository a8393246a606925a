"""Graph construction and fingerprints on the 36,737-structure Materials Project pool, with memory.

    .venv/bin/python bench/pool_features.py      # writes bench/results/pool_features.json

Each measurement runs in its own process, so its peak resident memory is its own: reading the pool,
building every graph (the `graphs` stage's work, one core) and saving the GraphSet; each fingerprint
kind alone on 1,000 structures (one core); and the element-aware fingerprints (wACSF, SOAP over element
groups, EAD) of the whole pool streamed to Parquet by two worker processes, as the `fingerprints` stage
does with two threads (target: <= 10 minutes and <= 4 GiB on 2 cores).
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
    from matssl import Crystal, read_extxyz

    t0 = time.perf_counter()
    crystals = [c for c in read_extxyz(POOL) if isinstance(c, Crystal)]
    return crystals, time.perf_counter() - t0


def graphs_job(queue, tmp: str) -> None:
    import torch

    from matssl import GraphSet

    torch.set_num_threads(1)
    crystals, read_s = read_pool()
    t0 = time.perf_counter()
    graphs, rejected = GraphSet.build(crystals, cutoff=8.0, k=12)
    build_s = time.perf_counter() - t0
    graphs.save(Path(tmp) / "graphs.npz")
    size = (Path(tmp) / "graphs.npz").stat().st_size
    queue.put(
        {
            "structures": len(crystals),
            "atoms": int(graphs.ptr[-1]),
            "rejected": len(rejected),
            "read_s": round(read_s, 1),
            "build_s": round(build_s, 1),
            "structures_per_s": round(len(crystals) / build_s, 1),
            "graphs_npz_mb": round(size / 2**20, 1),
            "peak_memory_mb": round(peak_mb(), 1),
        }
    )


def fingerprints_job(queue, n: int, kinds: list[str], processes: int, tmp: str) -> None:
    """What the `fingerprints` stage does: stream `kinds` of n pool structures to Parquet with `processes` workers."""
    import numpy as np
    import pyarrow.parquet as pq

    from matssl import FingerprintConfig, fingerprints

    crystals, _ = read_pool()
    pick = np.sort(np.random.default_rng(0).permutation(len(crystals))[:n])
    sample = [crystals[i] for i in pick]
    del crystals
    cfg = FingerprintConfig(kinds=kinds)
    path = Path(tmp) / "atoms.parquet"
    t0 = time.perf_counter()
    atoms = 0
    with pq.ParquetWriter(path, fingerprints.schema(cfg)) as writer:
        for b in fingerprints.stream(sample, cfg, processes=processes):
            writer.write_batch(b)
            atoms += b.num_rows
    wall = time.perf_counter() - t0
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest worker
    queue.put(
        {
            "structures": len(sample),
            "atoms": atoms,
            "processes": processes,
            "dims": fingerprints.dims(cfg),
            "wall_s": round(wall, 1),
            "atoms_per_s": round(atoms / wall, 1),
            "peak_memory_mb": {
                "main": round(peak_mb(), 1),
                "worker": round(workers, 1),
                "total": round(peak_mb() + processes * workers, 1),
            },
            "parquet_mb": round(path.stat().st_size / 2**20, 1),
        }
    )


def kind_speed_job(queue, n: int) -> None:
    """Atoms/s of each kind alone, one process, on a seeded sample."""
    import numpy as np

    from matssl import FINGERPRINT_KINDS, FingerprintConfig, fingerprints

    crystals, _ = read_pool()
    sample = [crystals[i] for i in np.sort(np.random.default_rng(1).permutation(len(crystals))[:n])]
    atoms = sum(len(c.numbers) for c in sample)
    out = {}
    for kind in FINGERPRINT_KINDS:
        cfg = FingerprintConfig(kinds=[kind])
        calc = fingerprints.Calculator(cfg)
        t0 = time.perf_counter()
        fingerprints.batch(sample, cfg, calc)
        out[kind] = round(atoms / (time.perf_counter() - t0), 1)
    queue.put({"structures": n, "atoms": atoms, "atoms_per_s": out})


def in_process(target, *args) -> dict:
    queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=target, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    import tempfile

    from matssl import fingerprints

    parser = argparse.ArgumentParser()
    parser.add_argument("--fingerprint-sample", type=int, default=36737, help="structures to fingerprint (all: 36737)")
    parser.add_argument("--kinds", nargs="+", default=list(fingerprints.ELEMENT_AWARE), help="fingerprint kinds of the timed run")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (the stage's threads)")
    args = parser.parse_args()
    if not POOL.exists():
        raise SystemExit(f"{POOL} not found: this benchmark reads ../shared/data (see its README)")
    with tempfile.TemporaryDirectory() as tmp:
        graphs = in_process(graphs_job, tmp)
    print("graphs", graphs)
    speeds = in_process(kind_speed_job, 1000)
    print("per kind", speeds)
    with tempfile.TemporaryDirectory() as tmp:
        fps = in_process(fingerprints_job, args.fingerprint_sample, args.kinds, args.processes, tmp)
    print("fingerprints", fps)
    result = {
        "pool": str(POOL.name),
        "host": platform.node(),
        "cpu_count": mp.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "graphs": {"cutoff": 8.0, "max_neighbors": 12, **graphs},
        "fingerprints_per_kind_one_process": speeds,
        "fingerprints": {"kinds": args.kinds, **fps},
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
