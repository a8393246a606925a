"""Training throughput of matssl's CGCNN against a reference of identical size and maths built from
torch-geometric's `CGConv`, side by side in one process on the same batches.

    .venv/bin/python bench/train_throughput.py [--threads 2] [--steps 30] [--batch-size 128] [--device cuda]

Both models start from the same weights (the parameter names match) and take the same optimiser steps
on the same batches; the script records graphs/s (forward + backward + step) of each, the ratio, and
the two loss curves. On a CPU, ours runs the compiled gate kernel (matssl.kernels) where it builds; it
is also timed without it (PyTorch operations only, what a machine without a C compiler gets). The
process keeps freed memory as the pipeline's training jobs do (`train.keep_freed_memory`), for all
three models. Batches are collated before the clock starts (the issue's measure: forward +
backward + step); the time to collate a batch, each library's way (our `GraphSet.batch` against
torch-geometric's `Batch.from_data_list` over per-structure `Data`, what its `DataLoader` does), is
measured apart and reported as a second, end-to-end throughput. Needs the demo's graphs (run
`make demo` first, or any `results/graphs/*/graphs.npz`).
Writes bench/results/train_throughput.json (train_throughput_cuda.json with `--device cuda`, where the
clock waits for the GPU at the end of each timed run; collation is CPU work and is timed on the CPU;
a batch size other than 128 adds `_b<size>` to the name).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch as PygBatch
from torch_geometric.data import Data
from torch_geometric.nn import CGConv

from matssl import CGCNN, Batch, GaussianExpansion, GraphSet, Regressor, keep_freed_memory, kernels, mean_pool

ROOT = Path(__file__).resolve().parents[1]


class ReferenceEncoder(nn.Module):
    """The same network with torch-geometric's CGConv on an edge list (parameter names as CGCNN's)."""

    def __init__(self, width=64, layers=3, cutoff=8.0, step=0.2, gauss=0.2, max_z=100):
        super().__init__()
        self.width = width
        self.embed = nn.Embedding(max_z + 1, width)
        self.expand = GaussianExpansion(cutoff, step, gauss)
        self.convs = nn.ModuleList(CGConv(width, len(self.expand.centers), aggr="add", batch_norm=True) for _ in range(layers))

    def forward(self, batch):
        h = self.embed(batch["numbers"])
        edge = self.expand(batch["dist"])
        for conv in self.convs:
            h = F.softplus(conv(h, batch["edge_index"], edge))

        class Out:
            graph = mean_pool(h, batch["graph"], batch["n_graphs"])

        return Out()


def edge_list(b: Batch) -> dict:
    centre = torch.arange(len(b.numbers))[:, None].expand_as(b.nbr)
    return {
        "numbers": b.numbers,
        "edge_index": torch.stack([b.nbr[b.mask], centre[b.mask]]),
        "dist": b.dist[b.mask],
        "graph": b.graph,
        "n_graphs": b.n_graphs,
    }


def pyg_data(graphs: GraphSet, s: int) -> Data:
    """Structure s as a torch-geometric `Data` (what a torch-geometric dataset would hold)."""
    b = graphs.batch(np.array([s]))
    e = edge_list(b)
    return Data(numbers=e["numbers"], edge_index=e["edge_index"], dist=e["dist"], num_nodes=len(e["numbers"]))


def collate_seconds(collate, batches: list, reps: int = 3) -> float:
    """Mean seconds to collate one batch."""
    t0 = time.perf_counter()
    for _ in range(reps):
        for b in batches:
            collate(b)
    return (time.perf_counter() - t0) / (reps * len(batches))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(model, batches, targets, steps):
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    sync(device)
    t0 = time.perf_counter()
    for k in range(steps):
        b, y = batches[k % len(batches)], targets[k % len(batches)]
        loss = F.l1_loss(model(b), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    sync(device)
    return [float(x) for x in losses], time.perf_counter() - t0


def without_kernel(fn, *args):
    """fn(*args) with the compiled CPU kernel switched off."""
    os.environ["MATSSL_NATIVE"] = "0"
    kernels._library.cache_clear()
    try:
        return fn(*args)
    finally:
        del os.environ["MATSSL_NATIVE"]
        kernels._library.cache_clear()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--graphs", default=None)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    device = torch.device(args.device)
    compiled = device.type == "cpu" and kernels.available()
    path = args.graphs or sorted(glob.glob(str(ROOT / "results/graphs/*/graphs.npz")))[0]
    graphs = GraphSet.load(path)
    rng = np.random.default_rng(0)
    idx = [rng.choice(len(graphs), args.batch_size, replace=False) for _ in range(10)]
    dense = [graphs.batch(i) for i in idx]
    edges = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in edge_list(b).items()} for b in dense]
    dense = [b.to(device) for b in dense]
    targets = [torch.randn(args.batch_size, generator=torch.Generator().manual_seed(k)).to(device) for k in range(10)]
    torch.manual_seed(0)
    ours = Regressor(CGCNN()).to(device)
    ref = Regressor(ReferenceEncoder()).to(device)
    ref.load_state_dict(ours.state_dict())  # identical initial weights
    train(ours, dense, targets, 3)  # warm-up (allocator, thread pool, CUDA kernels), then restore the weights
    train(ref, edges, targets, 3)
    torch.manual_seed(0)
    ours = Regressor(CGCNN()).to(device)
    ref.load_state_dict(ours.state_dict())
    plain = Regressor(CGCNN()).to(device)
    plain.load_state_dict(ours.state_dict())
    rounds = []
    for _ in range(5):  # interleave, so that all see the same machine state (this VM's speed drifts)
        l_ref, t_ref = train(ref, edges, targets, args.steps)
        l_ours, t_ours = train(ours, dense, targets, args.steps)
        t_plain = without_kernel(train, plain, dense, targets, args.steps)[1] if compiled else float("nan")
        rounds.append((t_ours, t_ref, l_ours, l_ref, t_plain))
    first_ours, first_ref = rounds[0][2], rounds[0][3]
    t_ours = min(r[0] for r in rounds)
    t_ref = min(r[1] for r in rounds)
    t_plain = min(r[4] for r in rounds)
    n = args.steps * args.batch_size
    data = {int(s): pyg_data(graphs, int(s)) for s in np.unique(np.concatenate(idx))}
    c_ours = collate_seconds(graphs.batch, idx)
    c_ref = collate_seconds(lambda i: PygBatch.from_data_list([data[int(s)] for s in i]), idx)
    e2e_ours = args.batch_size / (t_ours / args.steps + c_ours)
    e2e_ref = args.batch_size / (t_ref / args.steps + c_ref)
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(first_ours, first_ref, strict=True)]
    result = {
        "command": f"python bench/train_throughput.py --threads {args.threads} --steps {args.steps} "
        f"--batch-size {args.batch_size} --device {args.device}",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "threads": args.threads,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        },
        "cpu_kernel": "compiled" if compiled else "pytorch",
        "graphs": Path(path).parent.name,
        "ours_graphs_per_s": round(n / t_ours, 1),
        "reference_cgconv_graphs_per_s": round(n / t_ref, 1),
        "speedup": round(t_ref / t_ours, 2),
        "ours_without_compiled_kernel_graphs_per_s": round(n / t_plain, 1) if compiled else None,
        "speedup_without_compiled_kernel": round(t_ref / t_plain, 2) if compiled else None,
        "collate_ms_per_batch": {"ours": round(c_ours * 1e3, 2), "torch_geometric": round(c_ref * 1e3, 2)},
        "with_collation_graphs_per_s": {"ours": round(e2e_ours, 1), "reference_cgconv": round(e2e_ref, 1)},
        "speedup_with_collation": round(e2e_ours / e2e_ref, 2),
        "loss_curve_ours": [round(x, 5) for x in first_ours],
        "loss_curve_reference": [round(x, 5) for x in first_ref],
        "max_relative_loss_difference": float(max(rel)),
    }
    suffix = ("_cuda" if device.type == "cuda" else "") + (f"_b{args.batch_size}" if args.batch_size != 128 else "")
    out = ROOT / f"bench/results/train_throughput{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("loss_curve")}, indent=2))


if __name__ == "__main__":
    main()
