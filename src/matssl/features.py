"""The `graphs`, `augment` and `fingerprints` stages: what pretraining and finetuning read."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from matssl import fingerprints as fp
from matssl.augment import make_views
from matssl.config import AugmentConfig, FingerprintConfig, GraphConfig
from matssl.graphs import GraphSet, GraphSetBuilder
from matssl.io import atomic_path
from matssl.table import crystals_from_table, read_table, rejections_table, to_arrow, write_table

log = logging.getLogger(__name__)


def _structures(spec: dict[str, Any]):
    return crystals_from_table(read_table(Path(spec["upstream"]["structures"]) / "structures.parquet"))


def _build_graphs(crystals, g: GraphConfig, out: Path) -> tuple[GraphSet, list[tuple[str, str]]]:
    t0 = time.perf_counter()
    graphs, rejected = GraphSet.build(crystals, g.cutoff, g.max_neighbors)
    wall = time.perf_counter() - t0
    graphs.save(out / "graphs.npz")
    log.info(
        "graphs: %d structures in %.1f s (%.0f /s), %d rejected",
        len(crystals),
        wall,
        len(crystals) / max(wall, 1e-9),
        len(rejected),
    )
    return graphs, rejected


def run_graphs(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    g = GraphConfig.model_validate(spec["params"]["graphs"])
    crystals = _structures(spec)
    graphs, rejected = _build_graphs(crystals, g, out)
    write_table(rejections_table(rejected), out / "rejected.parquet")
    return {"n_graphs": len(graphs), "n_rejected": len(rejected), "n_atoms": int(graphs.ptr[-1])}


AUGMENT_CHUNK = 2048  # structures whose views are made, written and joined to the graphs at a time


def run_augment(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """Cached views for contrastive pretraining: `n_views` per structure, with their graphs. Streamed: the views of
    one chunk of structures at a time are made, written to `views.parquet` and added to the graphs."""
    cfg = AugmentConfig.model_validate(spec["params"]["augment"])
    g = GraphConfig.model_validate(spec["params"]["graphs"])
    crystals = _structures(spec)
    builder = GraphSetBuilder(g.cutoff, g.max_neighbors)
    t0, n_views = time.perf_counter(), 0
    with atomic_path(out / "views.parquet") as tmp, contextlib.ExitStack() as stack:
        writer = None
        for start in range(0, len(crystals), AUGMENT_CHUNK):
            views = [v for c in crystals[start : start + AUGMENT_CHUNK] for v in make_views(c, cfg, spec["params"]["max_z"])]
            table = to_arrow(views, [], source="augment")
            writer = writer or stack.enter_context(pq.ParquetWriter(tmp, table.schema))
            writer.write_table(table.cast(writer.schema))
            builder.add(views)
            n_views += len(views)
            log.info("augment: %d/%d structures, %d views", min(start + AUGMENT_CHUNK, len(crystals)), len(crystals), n_views)
        if writer is None:
            pq.write_table(to_arrow([], [], source="augment"), tmp)
    graphs, rejected = builder.finish()
    graphs.save(out / "graphs.npz")
    write_table(rejections_table(rejected), out / "rejected.parquet")  # views without a graph, and why
    log.info(
        "augment: %d views of %d structures in %.1f s, %d rejected",
        n_views,
        len(crystals),
        time.perf_counter() - t0,
        len(rejected),
    )
    return {"n_views": n_views, "n_graphs": len(graphs), "n_rejected": len(rejected)}


def run_fingerprints(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """Streamed to Parquet one chunk of structures at a time (memory bounded by the chunk, not the dataset),
    computed by the job's threads as worker processes."""
    cfg = FingerprintConfig.model_validate(spec["params"]["fingerprints"])
    crystals = _structures(spec)
    t0 = time.perf_counter()
    n_atoms = 0

    def progress(done: int, atoms: int) -> None:
        nonlocal n_atoms
        n_atoms += atoms
        if done % 2000 < 200 or done == len(crystals):
            log.info(
                "fingerprints: %d/%d structures, %.0f atoms/s", done, len(crystals), n_atoms / max(time.perf_counter() - t0, 1e-9)
            )

    processes = spec.get("runtime", {}).get("threads", 1)
    with atomic_path(out / "atoms.parquet") as tmp, pq.ParquetWriter(tmp, fp.schema(cfg)) as writer:
        for b in fp.stream(crystals, cfg, processes=processes, progress=progress):
            writer.write_batch(b)
    wall = time.perf_counter() - t0
    return {"n_atoms": n_atoms, "dims": fp.dims(cfg), "atoms_per_s": round(n_atoms / max(wall, 1e-9), 1)}
