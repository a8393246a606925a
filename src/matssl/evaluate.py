"""Evaluation: folds, label-fraction subsets, metrics and the paired statistics of the report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from matssl.config import PropertyConfig
from matssl.io import read_json, write_json
from matssl.table import read_table

MATBENCH_SEED = 18012019  # Matbench v0.1: KFold(5, shuffle=True, random_state=18012019) over row order


def kfold(ids: list[str], n_folds: int, seed: int) -> list[dict[str, list[str]]]:
    from sklearn.model_selection import KFold  # scipy/sklearn are imported where used: every job pays for imports

    ids = list(ids)
    return [
        {"train": [ids[i] for i in tr], "test": [ids[i] for i in te]}
        for tr, te in KFold(n_folds, shuffle=True, random_state=seed).split(ids)
    ]


def matbench_folds(ids_in_row_order: list[str]) -> list[dict[str, list[str]]]:
    return kfold(ids_in_row_order, 5, MATBENCH_SEED)


def transform_labels(y: pd.Series, transform: str) -> pd.Series:
    """Apply the property's transform; values it cannot take (log10 of <= 0) become NaN."""
    if transform == "log10":
        return np.log10(y.where(y > 0))
    return y


def run_splits(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    prop = PropertyConfig.model_validate(spec["params"]["property"])
    ingest = Path(spec["upstream"]["structures"])
    columns = pq.read_schema(ingest / "structures.parquet").names
    if prop.column not in columns:
        raise ValueError(f"property column {prop.column!r} is not a label of dataset {prop.dataset!r}: {columns}")
    df = read_table(ingest / "structures.parquet", columns=["id", prop.column])
    if prop.folds == "matbench":
        # folds are defined over the task's full row order: rejected rows keep their place
        rejected = read_table(ingest / "rejected.parquet")["id"].tolist()
        folds = matbench_folds(sorted(set(df["id"]) | set(rejected)))
    else:
        folds = kfold(sorted(df["id"]), prop.n_folds, prop.fold_seed)
    y = transform_labels(df.set_index("id")[prop.column].astype(float), prop.transform)
    usable = set(y[y.notna()].index)
    dropped = {"rejected_at_ingest": 0, "no_label_or_invalid_for_transform": int((~y.notna()).sum())}
    clean = []
    for f in folds:
        clean.append({k: [i for i in v if i in usable] for k, v in f.items()})
        dropped["rejected_at_ingest"] += sum(i not in y.index for i in f["test"])
    write_json({"scheme": prop.folds, "folds": clean, "dropped": dropped}, out / "folds.json")
    return {"n_folds": len(clean), "n_usable": len(usable), "dropped": dropped}


def label_subset(train_ids: list[str], fraction: float, seed: int, fold: int) -> list[str]:
    """The first ceil(fraction * n) ids of a permutation fixed by (seed, fold): subsets are nested
    across fractions and identical for every method."""
    ids = sorted(train_ids)
    order = np.random.default_rng([seed, fold]).permutation(len(ids))
    n = max(2, math.ceil(fraction * len(ids)))
    return [ids[i] for i in order[:n]]


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mae": float(mean_absolute_error(y, pred)),
        "rmse": float(math.sqrt(mean_squared_error(y, pred))),
        "r2": float(r2_score(y, pred)) if len(y) > 1 else float("nan"),
    }


def paired_test(baseline: list[float], method: list[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value over paired (fold, seed) errors; NaN when undefined
    (fewer than 2 pairs, or every difference zero)."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(baseline, float), np.asarray(method, float)
    if len(a) < 2 or np.allclose(a, b):
        return float("nan")
    return float(wilcoxon(a, b).pvalue)


def summarize_runs(runs: pd.DataFrame, baseline: str = "scratch") -> pd.DataFrame:
    """Per (method, fraction): MAE mean and std over folds x seeds, the change against the baseline on
    the same (fold, seed) pairs, and the paired Wilcoxon p-value."""
    rows = []
    for (method, fraction), g in runs.groupby(["method", "fraction"], sort=True):
        row = {"method": method, "fraction": fraction, "n_runs": len(g), "mae_mean": g["mae"].mean(),
               "mae_std": g["mae"].std(ddof=1) if len(g) > 1 else 0.0, "rmse_mean": g["rmse"].mean(),
               "r2_mean": g["r2"].mean(), "change_pct": float("nan"), "p_value": float("nan")}  # fmt: skip
        base = runs[(runs["method"] == baseline) & (runs["fraction"] == fraction)]
        if method != baseline and len(base):
            pairs = g.merge(base, on=["fold", "seed"], suffixes=("", "_base"))
            if len(pairs):
                row["change_pct"] = 100.0 * (pairs["mae"].mean() / pairs["mae_base"].mean() - 1.0)
                row["p_value"] = paired_test(pairs["mae_base"].tolist(), pairs["mae"].tolist())
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_property(spec: dict[str, Any], out: Path) -> None:
    """The friendly per-property target: every run's metrics and the per-method summary."""
    keep = ["method", "fold", "fraction", "seed", "mae", "rmse", "r2", "n_train", "n_test", "best_epoch"]
    runs = pd.DataFrame([{k: read_json(Path(d) / "metrics.json")[k] for k in keep} | {"dir": d} for d in spec["runs"]])
    summary = summarize_runs(runs)
    write_json({"property": spec["property"], "unit": spec.get("unit", ""), "transform": spec.get("transform", "none"),
                "summary": summary.to_dict("records"), "runs": runs.to_dict("records")}, out)  # fmt: skip
