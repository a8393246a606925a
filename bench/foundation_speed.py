"""The foundation-model baseline's cost: CHGNet crystal features of pool structures per second (frozen), and
training steps of the whole model with the finetuning head (`train: all`).

    .venv/bin/python bench/foundation_speed.py --threads 2     # writes bench/results/foundation_speed.json

A seeded sample of the 36,737-structure Materials Project pool, featurized as the `foundation` stage does
(batches of 64, torch with the given threads), with the time per structure and the peak memory; then
`--train-steps` optimiser steps of FoundationRegressor on batches of 64 of the same structures (CHGNet's graphs made
once, as the finetuning job does; the graph conversion is timed on its own).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT.parent / "shared" / "data" / "mp_pool" / "mp_cgcnn_36737.extxyz.gz"
OUT = ROOT / "bench" / "results" / "foundation_speed.json"


def train_speed(sample: list, steps: int, batch: int = 64) -> dict:
    """Graph conversion and training steps of all of CHGNet with the head (batches of `batch`, AdamW)."""
    from matssl import FoundationRegressor

    torch.manual_seed(0)
    model = FoundationRegressor("chgnet", head_width=128)
    t0 = time.perf_counter()
    graphs = [g for g in model.encoder.graphs(sample) if g is not None]
    convert = time.perf_counter() - t0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    t0 = time.perf_counter()
    for k in range(steps):
        part = graphs[k * batch % len(graphs) :][:batch]
        loss = (model(part) - 1.0).abs().mean()  # a constant target: the timing is what is measured
        opt.zero_grad()
        loss.backward()
        opt.step()
    wall = time.perf_counter() - t0
    return {
        "graphs_per_s_conversion": round(len(graphs) / convert, 1),
        "steps": steps,
        "batch": batch,
        "structures_per_s_training": round(steps * batch / wall, 1),
        "s_per_step": round(wall / steps, 2),
    }


def main() -> None:
    from matssl import Crystal, featurize, frozen_features, installed_versions, read_extxyz

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--train-steps", type=int, default=5)
    args = parser.parse_args()
    if not POOL.exists():
        raise SystemExit(f"{POOL} not found: this benchmark reads ../shared/data (see its README)")
    torch.set_num_threads(args.threads)
    crystals = [c for c in read_extxyz(POOL) if isinstance(c, Crystal)]
    sample = [crystals[i] for i in np.sort(np.random.default_rng(0).permutation(len(crystals))[: args.sample])]
    features, _ = frozen_features("chgnet")
    t0 = time.perf_counter()
    ids, x, rejected = featurize(sample, features)
    wall = time.perf_counter() - t0
    atoms = sum(len(c.numbers) for c in sample)
    train = train_speed(sample, args.train_steps)
    result = {
        "model": "chgnet",
        "versions": installed_versions(["chgnet", "torch"]),
        "threads": args.threads,
        "structures": len(sample),
        "atoms": atoms,
        "rejected": len(rejected),
        "wall_s": round(wall, 1),
        "structures_per_s": round(len(sample) / wall, 1),
        "atoms_per_s": round(atoms / wall, 1),
        "whole_pool_estimate_min": round(len(crystals) / (len(sample) / wall) / 60, 1),
        "train_all": train,
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "host": platform.node(),
        "date": time.strftime("%Y-%m-%d"),
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
