"""The `pretrain` stage: one self-supervised objective on the pool, written out as `encoder.pt`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import nn

from matssl.config import Optim
from matssl.encoders import build_encoder, check_fits, configured, load_encoder, save_encoder
from matssl.graphs import GraphSet
from matssl.io import read_json, sha256_file, write_json
from matssl.leakage import counts
from matssl.objectives import OBJECTIVES, PretrainData
from matssl.objectives.fingerprint import aligned_fingerprints
from matssl.train import Budget, Trainer, device_facts, pick_device

log = logging.getLogger(__name__)


def excluded_ids(spec: dict[str, Any]) -> dict[str, set[str]]:
    """Pool ids recognised as downstream test structures, per criterion (the `leakage` stage's; empty when the guard
    is off)."""
    leakage = spec["upstream"].get("leakage")
    if not leakage:
        return {}
    keyed_on = spec.get("by_content", {}).get("leakage")
    if keyed_on is not None and sha256_file(Path(leakage) / "excluded.json")[:16] != keyed_on:
        raise RuntimeError(
            f"the leakage guard's exclusion set in {leakage} is not the one this stage's key was planned "
            "on (it changed since): run Snakemake again"
        )
    return {k: set(v) for k, v in read_json(Path(leakage) / "excluded.json").items()}


def views_index(pool: GraphSet, views: GraphSet) -> tuple[np.ndarray, np.ndarray]:
    """([S, n_views] positions in `views` of each pool structure's views, mask of complete rows)."""
    parents = np.array([v.rsplit("#v", 1)[0] for v in views.ids.tolist()])
    n_views = int(max(int(v.rsplit("#v", 1)[1]) for v in views.ids.tolist())) + 1
    table = np.full((len(pool), n_views), -1, dtype=np.int64)
    for pos, (parent, vid) in enumerate(zip(parents, views.ids.tolist(), strict=True)):
        if parent in pool.index:
            table[pool.index[parent], int(vid.rsplit("#v", 1)[1])] = pos
    return table, (table >= 0).all(axis=1)


def pretrain_data(
    objective: str, params: dict[str, Any], upstream: Mapping[str, str | Path], max_z: int
) -> tuple[PretrainData, np.ndarray]:
    """The pool as `objective` reads it from its stage folders (`upstream`: `graphs`, and `augment` or
    `fingerprints` where it needs them), and the mask of its structures that have every view it needs."""
    cls = OBJECTIVES[objective]
    graphs = GraphSet.load(Path(upstream["graphs"]) / "graphs.npz")
    data = PretrainData(graphs, max_z=max_z)
    complete = np.ones(len(graphs), dtype=bool)
    if cls.needs_views:
        data.views = GraphSet.load(Path(upstream["augment"]) / "graphs.npz")
        data.views_of, complete = views_index(graphs, data.views)
    if cls.needs_fingerprints:
        kinds = cls.fingerprint_kinds(params)
        table = pq.read_table(Path(upstream["fingerprints"]) / "atoms.parquet", columns=["id", *kinds])
        data.fingerprints = aligned_fingerprints(table, graphs, kinds)
    return data, complete


MONITOR_GRAPHS = 256  # the fixed batch on which the collapse signal is measured after every epoch


def collapse_signals(graph_embeddings: torch.Tensor) -> dict[str, float]:
    """Two collapse signals of a batch of graph embeddings [B, D]:

    - `embedding_spread`: the per-dimension standard deviation of the L2-normalised embeddings, averaged over
      dimensions, times sqrt(D): about 1 for embeddings spread over the sphere, 0 when every crystal maps to the
      same vector (complete collapse; SimSiam's analysis);
    - `embedding_rank`: the effective rank (exp of the entropy of the normalised singular values; Roy & Vetterli
      2007) of the centred embeddings, divided by min(B, D): 1 when every direction is used, 1/D when the
      embeddings lie on one line (dimensional collapse, Jing et al. 2022), which the spread does not see."""
    z = torch.nn.functional.normalize(graph_embeddings.float(), dim=1)
    spread = float(z.std(dim=0).mean() * z.shape[1] ** 0.5)
    sv = torch.linalg.svdvals(graph_embeddings.float() - graph_embeddings.float().mean(dim=0))
    p = sv / sv.sum() if float(sv.sum()) > 0 else torch.ones(1)
    rank = float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())) / min(z.shape)
    return {"embedding_spread": spread, "embedding_rank": rank}


STEEP_SHARE = 0.1  # flagged as still learning: the last fifth of the epochs made at least this share of the loss's fall
COLLAPSED_SPREAD = 0.1  # flagged as collapsed: the final embedding spread below this
FLAT = 0.01  # a fall (or rise) of less than this share of the first epoch's loss is none


def convergence(history: list[dict[str, float]]) -> dict[str, Any]:
    """Whether a pretraining run levelled off, from its history: `late_share`, the share of the pretext loss's fall
    (first epoch's mean to the last's) made in the last fifth of the epochs (k of n, at least the last one: a loss
    falling linearly gives k / (n - 1), one that has levelled off about 0), and `flags`, the reasons to doubt the
    encoder in words: still learning (`late_share` >= STEEP_SHARE), a loss that rose again at the end, one that did not
    fall after the first epoch, too few epochs to tell, a loss or embedding that is not a finite number, or a collapsed
    embedding (final spread < COLLAPSED_SPREAD; see `collapse_signals`)."""
    loss = [h["loss"] for h in history if "loss" in h]
    out: dict[str, Any] = {"late_share": None, "flags": []}
    if not loss:
        return out
    n, k = len(loss), max(1, round(len(loss) / 5))
    fall, flat = loss[0] - loss[-1], FLAT * abs(loss[0])
    if not all(math.isfinite(x) for x in loss):
        out["flags"].append("the loss is not a finite number")
    elif n < 3:
        out["flags"].append(f"{n} epoch{'s' if n > 1 else ''}: too few to tell whether the loss levelled off")
    elif loss[-1] - min(loss) > max(flat, STEEP_SHARE * max(fall, 0.0)):
        out["flags"].append(f"the loss rose again at the end (lowest {min(loss):.4g}, last {loss[-1]:.4g})")
    elif fall <= flat:
        out["flags"].append("the loss did not fall after the first epoch (levelled off within it, or not learning)")
    else:
        out["late_share"] = (loss[-1 - k] - loss[-1]) / fall
        if out["late_share"] >= STEEP_SHARE:
            out["flags"].append(f"still learning: the last {k} of {n} epochs made {out['late_share']:.0%} of the loss's fall")
    spread = history[-1].get("embedding_spread")
    if spread is not None and not spread >= COLLAPSED_SPREAD:  # (NaN too)
        out["flags"].append(f"collapsed: the embeddings' spread is {spread:.2g} (1: spread over the sphere)")
    return out


def import_encoder(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """`pretrained`: check the encoder trained elsewhere against this config's encoder, and copy it."""
    p, path = spec["params"], spec["external"]["path"]
    check_fits(path, p["encoder"], p["graphs"], p["max_z"], p["method"])
    encoder = load_encoder(path)
    save_encoder(encoder, str(out / "encoder.pt"), extra={"method": p["method"], "objective": p["objective"]})
    write_json([], out / "history.json")
    return {"imported_from": path, "imported_sha256": sha256_file(path), "n_pool": None}


def run_pretrain(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    p, up, rt = spec["params"], spec["upstream"], spec["runtime"]
    if p["objective"] == "pretrained":
        return import_encoder(spec, out)
    torch.set_num_threads(rt.get("threads", 1))
    device = pick_device(rt.get("device", "auto"))
    torch.manual_seed(p["seed"])
    objective_cls = OBJECTIVES[p["objective"]]
    data, complete = pretrain_data(p["objective"], p["objective_params"], up, p["max_z"])
    graphs = data.graphs
    excluded = excluded_ids(spec)
    is_excluded = np.isin(graphs.ids, list(set().union(*excluded.values())))
    pool_idx = np.flatnonzero(~is_excluded & complete)
    log.info(
        "pretrain %s: pool %d structures (%d excluded as downstream test structures) on %s",
        p["method"],
        len(pool_idx),
        int(is_excluded.sum()),
        device,
    )

    name, hparams = configured(p["encoder"], p["graphs"], p["max_z"])
    encoder = build_encoder(name, **hparams)
    objective = objective_cls(encoder.width, p["objective_params"], data)
    history: list[dict[str, float]] = []
    resumed_from = None
    if objective_cls.kind.trains:
        gen = torch.Generator().manual_seed(p["seed"])
        trainer = Trainer(
            nn.ModuleDict({"encoder": encoder, "objective": objective}),
            Budget.from_optim(Optim(**p["optim"])),
            p["seed"],
            device,
            checkpoint=out / "checkpoint.pt",
            generator=gen,
        )
        resumed_from = trainer.resumed_from
        probe = graphs.batch(pool_idx[np.linspace(0, len(pool_idx) - 1, min(MONITOR_GRAPHS, len(pool_idx))).astype(int)])
        history = trainer.fit(
            len(pool_idx),
            lambda idx: objective.loss(encoder, pool_idx[idx], data, gen, device),
            monitor=lambda: collapse_signals(encoder(probe.to(device)).graph),
        )
    save_encoder(encoder.cpu(), str(out / "encoder.pt"), extra={"method": p["method"], "objective": p["objective"]})
    write_json(history, out / "history.json")
    (out / "checkpoint.pt").unlink(missing_ok=True)
    speeds = [h["graphs_per_s"] for h in history]
    return {
        **device_facts(device),
        # (an objective that does not train, scratch, sees no pool)
        **(
            {"n_pool": int(len(pool_idx)), **counts(excluded, set(graphs.ids.tolist()))}
            if objective_cls.kind.trains
            else {"n_pool": None}
        ),
        "resumed_from_epoch": resumed_from,
        "epochs_run": len(history) - (resumed_from or 0),
        "graphs_per_s": round(float(np.median(speeds)), 1) if speeds else None,
    }
