"""Evaluation: folds, label-fraction subsets and metrics (the statistics over runs are in `stats`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from matssl.config import PropertyConfig
from matssl.io import InputError, write_json
from matssl.sources import column_is_text
from matssl.table import read_table
from matssl.target import Target

MATBENCH_SEED = 18012019  # Matbench v0.1: KFold(5, shuffle=True, random_state=18012019) over row order
# The targets of Matbench's classification tasks (mp_is_metal, expt_is_metal, glass), whose folds are stratified (the
# same seed); any other column of a Matbench task (a class made of its target, its crystal system) takes the task's
# own KFold folds.
MATBENCH_CLASS_TARGETS = ("is_metal", "gfa")


def kfold(ids: list[str], n_folds: int, seed: int) -> list[dict[str, list[str]]]:
    from sklearn.model_selection import KFold  # scipy/sklearn are imported where used: every job pays for imports

    ids = list(ids)
    return [
        {"train": [ids[i] for i in tr], "test": [ids[i] for i in te]}
        for tr, te in KFold(n_folds, shuffle=True, random_state=seed).split(ids)
    ]


def stratified_kfold(ids: list[str], labels: list[str], n_folds: int, seed: int) -> list[dict[str, list[str]]]:
    """K folds that keep each class's share (scikit-learn's StratifiedKFold, shuffled with `seed`)."""
    from sklearn.model_selection import StratifiedKFold

    counts = pd.Series(labels).value_counts()
    if counts.max() < n_folds:
        raise InputError(f"stratified {n_folds}-fold splits need a class with {n_folds} structures or more: {counts.to_dict()}")
    return [
        {"train": [ids[i] for i in tr], "test": [ids[i] for i in te]}
        for tr, te in StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(ids)), labels)
    ]


def matbench_folds(ids_in_row_order: list[str]) -> list[dict[str, list[str]]]:
    return kfold(ids_in_row_order, 5, MATBENCH_SEED)


def column_problem(column: pd.Series, target: Target) -> str | None:
    """Why a label column cannot be read as `target`, or None: no value at all, text for a regression or a
    threshold, fewer than two classes."""
    name, present = repr(target.column), column.dropna()
    if present.empty:
        return f"label column {name} has no values"
    text = column_is_text(present)
    examples = ", ".join(repr(v) for v in list(dict.fromkeys(present.astype(str)))[:3])
    if text and not target.classification:
        return (
            f"label column {name} holds text ({examples}, ...): a regression needs numbers (kind: classification "
            "makes each distinct value a class)"
        )
    if text and target.threshold is not None:
        return (
            f"label column {name} holds text ({examples}, ...): a threshold makes two classes of a numeric column; "
            "without it each distinct value is a class"
        )
    if target.classification:
        classes = sorted(set(target.values(column).dropna()))
        if len(classes) < 2:
            return f"label column {name}: a classification needs two classes or more, found {classes}"
    return None


def class_codes(values: pd.Series, classes: list[str]) -> pd.Series:
    """Class names as their positions in `classes` (-1 for a missing value)."""
    return values.map({c: k for k, c in enumerate(classes)}).fillna(-1).astype(int)


EXTENSIVE_RHO = 0.7


def atoms_spearman(y: pd.Series, n_atoms: pd.Series) -> float:
    """Spearman's rho of a property against the atoms per cell: |rho| > EXTENSIVE_RHO suggests an extensive
    property (per cell or per formula unit), which mean pooling cannot see: use `per_atom`."""
    from scipy.stats import spearmanr

    both = pd.concat([y, n_atoms], axis=1).dropna()
    if len(both) < 3 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        return float("nan")
    return float(spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic)


TAIL_SDS = 3.0


def tail_share(y: np.ndarray) -> float:
    """The share of values further than TAIL_SDS robust standard deviations (interquartile range / 1.349) from their
    median: 0.27 % for a normal distribution; a heavy tail, on which the median is a strong constant, has more."""
    if len(y) < 4:
        return float("nan")
    q25, q50, q75 = np.percentile(y, [25, 50, 75])
    sd = (q75 - q25) / 1.349
    return float(np.mean(np.abs(y - q50) > TAIL_SDS * sd)) if sd > 0 else float("nan")


def run_splits(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    prop = PropertyConfig.model_validate(spec["params"]["property"])
    ingest = Path(spec["upstream"]["structures"])
    columns = pq.read_schema(ingest / "structures.parquet").names
    if prop.column not in columns:
        raise InputError(f"property column {prop.column!r} is not a label of dataset {prop.dataset!r}: {columns}")
    df = read_table(ingest / "structures.parquet", columns=["id", "numbers", prop.column])
    target = Target.of(prop.model_dump())
    problem = column_problem(df[prop.column], target)
    if problem:
        raise InputError(f"dataset {prop.dataset!r}: {problem}")
    y = target.values(df.set_index("id")[prop.column])
    usable = set(y[y.notna()].index)
    if len(usable) < prop.fold_count:
        raise InputError(
            f"dataset {prop.dataset!r}: {len(usable)} structures have a usable value of {prop.column!r} "
            f"(transform {prop.transform}), too few for {prop.fold_count} folds"
        )
    classes = sorted(set(y.dropna())) if prop.kind == "classification" else None
    rejected = read_table(ingest / "rejected.parquet")["id"].tolist()
    if prop.folds == "matbench" and classes is not None and prop.column in MATBENCH_CLASS_TARGETS:
        # a Matbench classification task's folds: StratifiedKFold(5, shuffle, its seed) over its rows and labels
        if rejected or len(usable) < len(df):
            raise InputError(
                f"Matbench's stratified folds need the label of every row of the task: {len(rejected)} rows "
                f"were rejected at ingest and {len(df) - len(usable)} have no label; use folds: kfold"
            )
        folds = stratified_kfold(df["id"].tolist(), y.loc[df["id"]].tolist(), 5, MATBENCH_SEED)
    elif prop.folds == "matbench":
        # folds are defined over the task's full row order: rejected rows keep their place
        folds = matbench_folds(sorted(set(df["id"]) | set(rejected)))
    elif classes is not None:
        ids = sorted(usable)
        folds = stratified_kfold(ids, y.loc[ids].tolist(), prop.n_folds, prop.fold_seed)
    else:
        folds = kfold(sorted(df["id"]), prop.n_folds, prop.fold_seed)
    dropped = {"rejected_at_ingest": 0, "no_label_or_invalid_for_transform": int((~y.notna()).sum())}
    clean = []
    for f in folds:
        clean.append({k: [i for i in v if i in usable] for k, v in f.items()})
        dropped["rejected_at_ingest"] += sum(i not in y.index for i in f["test"])
    if classes is None:
        rho = atoms_spearman(y, df.set_index("id")["numbers"].map(len).astype(float))
        extra = {"atoms_spearman": rho, "tail_share": tail_share(y.dropna().to_numpy())}
    else:
        extra = {"classes": classes, "class_counts": {c: int((y == c).sum()) for c in classes}}
    write_json({"scheme": prop.folds, "kind": prop.kind, "folds": clean, "dropped": dropped, **extra}, out / "folds.json")
    return {"n_folds": len(clean), "n_usable": len(usable), "dropped": dropped, **extra}


def subset_size(n_train_fold: int, fraction: float) -> int:
    return max(2, math.ceil(fraction * n_train_fold))


def label_subset(train_ids: list[str], fraction: float, seed: int, fold: int, classes: pd.Series | None = None) -> list[str]:
    """The first ceil(fraction * n) ids of a permutation fixed by (seed, fold): subsets are nested
    across fractions and identical for every method. With `classes` (each id's class), the same within each
    class (at least one of each), so that the subset keeps the classes' shares, in an order mixed by (seed, fold)."""
    ids = sorted(train_ids)
    if classes is None:
        order = np.random.default_rng([seed, fold]).permutation(len(ids))
        return [ids[i] for i in order[: subset_size(len(ids), fraction)]]
    of = classes.loc[ids].to_numpy()
    chosen = []
    for k, c in enumerate(sorted(set(of))):
        members = [i for i, ci in zip(ids, of, strict=True) if ci == c]
        order = np.random.default_rng([seed, fold, k]).permutation(len(members))
        chosen += [members[j] for j in order[: max(1, math.ceil(fraction * len(members)))]]
    chosen.sort()
    return [chosen[j] for j in np.random.default_rng([seed, fold]).permutation(len(chosen))]


def n_validation(n_subset: int, val_fraction: float, min_val: int) -> int:
    """Validation structures of a training subset: val_fraction of it, at least min_val."""
    return max(min_val, math.ceil(val_fraction * n_subset))


def subset_problem(n_subset: int, n_train_fold: int, val_fraction: float, min_val: int) -> str | None:
    """Why a training subset of `n_subset` labelled structures (from a fold of `n_train_fold`) cannot be
    finetuned: fewer than min_val left for training beside the validation split. None if it can."""
    n_val = n_validation(n_subset, val_fraction, min_val)
    if n_subset - n_val >= min_val:
        return None
    return (
        f"{n_subset} labelled training structures leave fewer than min_val={min_val} for training beside "
        f"{n_val} for validation; the smallest usable fraction is about {2 * min_val / n_train_fold:.3g}"
    )


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """ROC-AUC (one-vs-rest, macro over the classes that the test set holds with both signs: for two classes the
    usual binary AUC), accuracy and log loss of class probabilities `proba` [n, K] for class indices `y`."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=int)
    aucs = [roc_auc_score(y == c, proba[:, c]) for c in range(proba.shape[1]) if 0 < (y == c).sum() < len(y)]
    return {
        "roc_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "accuracy": float((proba.argmax(axis=1) == y).mean()),
        "log_loss": log_loss(y, proba),
    }


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """The mean negative log probability of the true classes (probabilities clipped at 1e-7): a classification's
    validation score, and one of its test metrics."""
    from sklearn.metrics import log_loss as sk_log_loss

    return float(sk_log_loss(np.asarray(y, dtype=int), np.clip(proba, 1e-7, 1.0), labels=list(range(proba.shape[1]))))


def class_frequencies(y_train: np.ndarray, k: int) -> np.ndarray:
    """The training classes' frequencies, add-one smoothed (a class absent from training is not impossible)."""
    counts = np.bincount(np.asarray(y_train, dtype=int), minlength=k).astype(float)
    return (counts + 1.0) / (counts.sum() + k)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mae": float(mean_absolute_error(y, pred)),
        "rmse": float(math.sqrt(mean_squared_error(y, pred))),
        "r2": float(r2_score(y, pred)) if len(y) > 1 else float("nan"),
    }
