"""Statistics over finetuning runs: per-method summaries, the paired comparison with scratch, Holm's
correction over every comparison of a report, and the words a result may use.

Not part of any stage's code fingerprint: the property targets and the report, which use it, are not
cached stages, so a change here re-summarises finished runs without re-running them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matssl.io import read_json, write_json

ALPHA = 0.05


@dataclass(frozen=True)
class Scores:
    """What a property kind is scored by: the metric its comparisons use (and whether lower is better), the others
    shown beside it, the validation score its runs were chosen on, and its dummy rows (name -> key in a run's
    `dummy` metrics)."""

    primary: str
    lower_is_better: bool
    others: tuple[str, ...]
    val: str
    dummies: dict[str, str]
    label: str
    paired: tuple[str, ...] = ()  # other metrics compared with scratch too (an interval beside the cell, no verdict)


SCORES = {
    "regression": Scores(
        primary="mae", lower_is_better=True, others=("rmse", "r2"), val="val_mae", label="MAE",
        dummies={"dummy (mean)": "mean", "dummy (median)": "median"},
    ),
    "classification": Scores(
        primary="roc_auc", lower_is_better=False, others=("accuracy", "log_loss"), val="val_log_loss", label="ROC-AUC",
        dummies={"dummy (majority)": "majority"}, paired=("accuracy",),
    ),
}  # fmt: skip
DUMMIES = tuple(name for sc in SCORES.values() for name in sc.dummies)  # the constant predictors, rows of every summary


def corrected_t(diffs: np.ndarray, n_train: float, n_test: float) -> dict[str, float]:
    """The corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for k-fold) for the mean
    of J paired differences from train/test splits: the variance of the mean is (1/J + n_test/n_train) s^2
    instead of s^2/J, because the splits share training data; df = J - 1. Returns the mean, its corrected
    standard error, df and the two-sided p (NaN with fewer than 2 differences)."""
    from scipy.stats import t as student_t

    d = np.asarray(diffs, float)
    if len(d) < 2:
        return {
            "diff_mean": float(d.mean()) if len(d) else float("nan"),
            "diff_se": float("nan"),
            "df": 0,
            "p_value": float("nan"),
        }
    mean, var = float(d.mean()), float(d.var(ddof=1))
    se = math.sqrt((1.0 / len(d) + n_test / n_train) * var)
    if not (math.isfinite(mean) and math.isfinite(se)):
        p = float("nan")
    else:  # (identical non-zero differences: se 0, p 0)
        p = float(2 * student_t.sf(abs(mean) / se, len(d) - 1)) if se > 0 else float(mean == 0)
    return {"diff_mean": mean, "diff_se": se, "df": len(d) - 1, "p_value": p}


def t_interval(mean: float, se: float, df: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The two-sided (1 - alpha) interval of a t statistic's mean."""
    from scipy.stats import t as student_t

    if df < 1 or not math.isfinite(se):
        return float("nan"), float("nan")
    half = float(student_t.ppf(1 - alpha / 2, df)) * se
    return mean - half, mean + half


def holm(p_values: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down adjustment: (adjusted p-values, the level each hypothesis is judged at), in the input
    order; NaN entries are not in the family and stay NaN. The k-th smallest p is tested at alpha/(m - k + 1)
    until the first that fails; every later one keeps that failing step's level, so an interval at its level
    excludes 0 exactly when Holm rejects (p = (0.03, 0.04): neither, though 0.04 < 0.05)."""
    p = np.asarray(p_values, float)
    adjusted, levels = np.full(len(p), np.nan), np.full(len(p), np.nan)
    family = np.flatnonzero(~np.isnan(p))
    m, running, stopped = len(family), 0.0, None
    for rank, i in enumerate(family[np.argsort(p[family], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
        levels[i] = stopped if stopped is not None else ALPHA / (m - rank)
        if stopped is None and running >= ALPHA:
            stopped = levels[i]
    return adjusted, levels


def verdict(
    change_pct: float,
    lo_pct: float,
    hi_pct: float,
    p_holm: float,
    lower_is_better: bool = True,
    words: tuple[str, str] = ("helps", "hurts"),
) -> str:
    """The words a comparison with scratch may use, from its corrected interval and Holm-adjusted p (an error such as
    MAE: lower is better; a score such as ROC-AUC: higher); `words`: what to say when the method is better, worse."""
    interval = f"{lo_pct:+.1f} to {hi_pct:+.1f} %"
    if not math.isfinite(p_holm):
        return "not tested"
    if p_holm < ALPHA:
        return f"{words[0] if (change_pct < 0) == lower_is_better else words[1]}: {change_pct:+.1f} % ({interval})"
    return f"no detectable difference ({interval})"


def paired_change(pairs: pd.DataFrame, metric: str) -> tuple[dict[str, float], float, float, float]:
    """(corrected_t of the per-fold mean differences in `metric` against the baseline, the baseline's mean, the 95 %
    interval's bounds) over runs merged with their baseline partners (columns `metric` and `metric`_base).
    The fold is the unit: the runs of one fold (finetuning and pretraining seeds) share its test set and, at 100 %, its
    training data, so their differences are averaged first. The correction uses the whole training fold: the label
    subsets of two folds overlap less than the folds do, so the folds' n_test/n_train (1/(k-1)) bounds their
    correlation, where a subset's own size would overstate it tenfold at 10 % of the labels."""
    folds = pairs.assign(d=pairs[metric] - pairs[f"{metric}_base"]).groupby("fold")
    test = corrected_t(folds["d"].mean().to_numpy(), float(folds["n_train_fold"].mean().mean()),
                       float(folds["n_test"].mean().mean()))  # fmt: skip
    lo, hi = t_interval(test["diff_mean"], test["diff_se"], test["df"])
    return test, float(pairs[f"{metric}_base"].mean()), lo, hi


def summarize_runs(runs: pd.DataFrame, baseline: str = "scratch", kind: str = "regression") -> pd.DataFrame:
    """Per (method, label fraction): the kind's metrics over runs (`SCORES`: MAE, RMSE, R²; ROC-AUC, accuracy, log
    loss), how runs stopped and which learning rate they chose; against the baseline on the same (fold, finetuning
    seed) pairs, the mean difference in the primary metric over folds (each the mean over its seeds), its corrected
    standard error and p (`corrected_t`) and the 95 % interval as a % of the baseline's value.
    Dummy rows per fraction (the training subset's mean and median; its class frequencies), from the baseline's runs;
    a method beats the dummy if its mean primary metric is better than every dummy's; a fraction where no trained
    method does is `failed`."""
    sc = SCORES[kind]
    m, better = sc.primary, (np.less if sc.lower_is_better else np.greater)
    # runs recorded before these fields were: the largest subset of the fold, the method itself, unrecorded
    if "n_train_fold" not in runs:
        runs = runs.assign(n_train_fold=(runs["n_train"] + runs["n_val"]).groupby(runs["fold"]).transform("max"))
    runs = runs.assign(**{k: v for k, v in {"base_method": runs["method"], "pretrain_epochs": np.nan,
                                            "precision": "unrecorded"}.items() if k not in runs})  # fmt: skip
    rows = []
    for (method, fraction), g in runs.groupby(["method", "fraction"], sort=True):
        row = {"method": method, "fraction": fraction, "n_runs": len(g), f"{m}_mean": g[m].mean(),
               "base_method": g["base_method"].iloc[0], "pretrain_epochs": g["pretrain_epochs"].iloc[0],
               f"{m}_std": g[m].std(ddof=1) if len(g) > 1 else 0.0, **{f"{o}_mean": g[o].mean() for o in sc.others},
               "val_score_mean": g[sc.val].mean(), "cap_share": g["hit_cap"].mean(),
               "best_step_median": float(g["best_step"].median()), "precision": ", ".join(sorted(set(g["precision"]))),
               "lrs": ", ".join(f"{lr:g} ×{n}" for lr, n in sorted(g["lr"].value_counts().items()))}  # fmt: skip
        base = runs[(runs["method"] == baseline) & (runs["fraction"] == fraction)]
        if method != baseline and len(base):
            pairs = g.merge(base, on=["fold", "seed"], suffixes=("", "_base"))
            if len(pairs):
                test, base_score, lo, hi = paired_change(pairs, m)
                row.update(test, base_score=base_score, change_pct=100 * test["diff_mean"] / base_score,
                           ci_low_pct=100 * lo / base_score, ci_high_pct=100 * hi / base_score)  # fmt: skip
                for o in sc.paired:  # the same comparison of a second metric, shown beside it (not in Holm's family)
                    t2, b2, lo2, hi2 = paired_change(pairs, o)
                    row.update({f"{o}_change_pct": 100 * t2["diff_mean"] / b2, f"{o}_ci_low_pct": 100 * lo2 / b2,
                                f"{o}_ci_high_pct": 100 * hi2 / b2})  # fmt: skip
        rows.append(row)
        if method == baseline:
            once = g.drop_duplicates(["fold", "seed"])
            for name, key in sc.dummies.items():
                col = f"dummy_{key}_{m}"
                rows.append({"method": name, "fraction": fraction, "n_runs": len(once), f"{m}_mean": once[col].mean(),
                             f"{m}_std": once[col].std(ddof=1) if len(once) > 1 else 0.0,
                             **{f"{o}_mean": once[f"dummy_{key}_{o}"].mean() for o in sc.others}})  # fmt: skip
    out = pd.DataFrame(rows)
    for col in ("diff_mean", "diff_se", "df", "p_value", "base_score", "change_pct", "ci_low_pct", "ci_high_pct"):
        if col not in out:
            out[col] = np.nan
    dummies = out[out["method"].isin(DUMMIES)].groupby("fraction")[f"{m}_mean"]
    best_dummy = dummies.min() if sc.lower_is_better else dummies.max()
    out["best_dummy"] = out["fraction"].map(best_dummy)  # the score every trained method's mean has to beat
    out["beats_dummy"] = [method not in DUMMIES and bool(better(v, bar))  # (NaN: no dummy at that fraction, never beaten)
                          for method, v, bar in zip(out["method"], out[f"{m}_mean"], out["best_dummy"], strict=True)]  # fmt: skip
    ok = out[out["beats_dummy"]].groupby("fraction").size()
    out["failed"] = [f not in ok.index for f in out["fraction"]]
    out["lower_is_better"] = sc.lower_is_better
    return out


def compare_all(summary: pd.DataFrame, words: tuple[str, str] = ("helps", "hurts")) -> pd.DataFrame:
    """Every comparison with scratch shown in one report (rows of `summarize_runs`, several properties):
    Holm-adjusted p over all of them, the interval at the level Holm tests each one at (the corrected
    interval: it excludes 0 whenever the adjusted p is below 0.05) and the verdict. Failed cells (no model
    beats the dummy) are left out of the family and get no verdict but 'failed'."""
    out = summary.copy()
    tested = ~out["method"].isin(DUMMIES) & out["p_value"].notna() & ~out["failed"]
    adjusted, levels = holm(np.where(tested, out["p_value"], np.nan))
    out["p_holm"] = adjusted
    bounds = np.array([t_interval(m, se, int(df), a) if t else (np.nan, np.nan)
                       for m, se, df, a, t in zip(out["diff_mean"], out["diff_se"], out["df"].fillna(0), levels, tested, strict=True)],
                      dtype=float).reshape(-1, 2)  # fmt: skip
    out["corrected_low_pct"] = 100 * bounds[:, 0] / out["base_score"]
    out["corrected_high_pct"] = 100 * bounds[:, 1] / out["base_score"]
    compared = out["change_pct"].notna()  # every method but scratch and the dummies
    lower = out["lower_is_better"] if "lower_is_better" in out else pd.Series(True, index=out.index)
    out["verdict"] = [
        "" if not c else "failed: no model beats the dummy" if failed else verdict(ch, a, b, p, lo, words) if t else "not tested"
        for c, failed, t, ch, a, b, p, lo in zip(compared, out["failed"], tested, out["change_pct"], out["corrected_low_pct"],
                                                  out["corrected_high_pct"], out["p_holm"], lower, strict=True)
    ]  # fmt: skip
    return out


def against(runs: dict[str, tuple[pd.DataFrame, str]], baseline: str, methods: list[str]) -> pd.DataFrame:
    """`methods` against another model than scratch (a foundation model: which wins, by how much) on the same folds
    and finetuning seeds, per property (name -> (its runs, its kind)) and label fraction: `summarize_runs`' rows of
    those methods, Holm-corrected over all of them (a family of its own: another question than the comparisons with
    scratch), the verdict naming the winner. A cell where neither they nor the baseline beat the dummy is failed."""
    rows = []
    for prop, (r, kind) in runs.items():
        if baseline in set(r["method"]):
            s = summarize_runs(r[r["method"].isin([baseline, *methods])], baseline=baseline, kind=kind)
            rows.append(s[s["method"].isin(methods)].assign(property=prop, kind=kind))
    if not rows:
        return pd.DataFrame()
    return compare_all(pd.concat(rows, ignore_index=True), words=(f"beats {baseline}", f"{baseline} better"))


def summarize_property(spec: dict[str, Any], out: Path) -> None:
    """The friendly per-property target: every run's metrics and the per-method summary."""
    kind = spec.get("kind", "regression")
    sc = SCORES[kind]
    keep = ["method", "base_method", "pretrain_epochs", "pretrain_seed", "fold", "fraction", "seed", "precision", sc.primary,
            *sc.others, "n_train", "n_val", "n_test", "n_train_fold", "lr", sc.val, "best_step", "steps", "stopped", "hit_cap"]  # fmt: skip
    rows = []
    for d in spec["runs"]:
        m = read_json(Path(d) / "metrics.json")
        dummy = {f"dummy_{k}_{metric}": v for k, scores in m["dummy"].items() for metric, v in scores.items()}
        clipped = {"n_test_clipped": m.get("n_test_clipped", math.nan)}  # (a regression's; NaN: runs from before it was)
        rows.append({k: m[k] for k in keep} | clipped | dummy | {"dir": d})
    runs = pd.DataFrame(rows)
    summary = summarize_runs(runs, kind=kind)
    from matssl.stages import spec_digest

    folds = read_json(Path(spec["splits"]) / "folds.json") if spec.get("splits") else {}
    write_json({"property": spec["property"], "spec_digest": spec_digest(spec), "unit": spec.get("unit", ""),
                "kind": kind, "classes": folds.get("classes"), "transform": spec.get("transform", "none"),
                "per_atom": spec.get("per_atom", "none"), "atoms_spearman": folds.get("atoms_spearman"),
                "summary": summary.to_dict("records"), "runs": runs.to_dict("records")}, out)  # fmt: skip
