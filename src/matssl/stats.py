"""Statistics over finetuning runs: what each method changes against a baseline, with intervals at a stated level,
grouped into the questions (families) a report answers, and the words a result may use.

The effect of one comparison is measured per paired run (the same fold, label subset and finetuning seed): for a
regression the log ratio of the test MAE (reported back as a % change, so an interval never passes -100 %), for a
classification the difference in ROC-AUC (in points). Its uncertainty has two levels (`two_level`): the folds, whose
training sets overlap (the Nadeau-Bengio correction applies to them alone), and the finetuning and pretraining seeds,
which add variance without that overlap. The families (`analyse`):

- per cell (method x property x label fraction): exploratory, the 95 % interval and a Benjamini-Hochberg q-value;
- primary: per method x property, pooled over the label fractions, Holm over the family;
- confirmatory: the comparisons named in the config's `statistics.confirmatory` before the runs (`Named`: against
  scratch or a control, per property or on average across the properties), Holm over them alone, whichever question
  each answers; each question's other comparisons stay a family of their own (`judge_named`);
- across properties: per method, a random-effects estimate over the properties (DerSimonian-Laird with the
  Hartung-Knapp interval) with its heterogeneity, Holm over the methods;
- a foundation model against scratch, and each pretrained method against a foundation model: families of their own;
- each pretrained method against a control pretraining of the same budget (`controls`), per property and across
  properties: families of their own;
- the pretraining budget (`budget_rows`): per method swept over budgets, the change per doubling of the budget, per
  property and across properties.

A verdict of no detectable difference says the smallest change the comparison could have detected at 80 % power
(`detectable`). Every word comes from `verdict`.

Not part of any stage's code fingerprint: the property targets and the report, which use it, are not cached stages,
so a change here re-summarises finished runs without re-running them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

ALPHA = 0.05  # every family's error rate (Holm: family-wise; Benjamini-Hochberg: false discovery rate)
POWER = 0.8  # the power at which a design's detectable effect is stated
LEVEL = 1 - ALPHA  # every interval shown is a plain 95 % interval


@dataclass(frozen=True)
class Scores:
    """What a property kind is scored by: the metric its comparisons use (and whether lower is better), the others
    shown beside it, the validation score its runs were chosen on, its dummy rows (name -> key in a run's `dummy`
    metrics), and the scale its comparisons are made on (`log_ratio`: reported as a % change; `difference`: in points
    of the metric x 100)."""

    primary: str
    lower_is_better: bool
    others: tuple[str, ...]
    val: str
    dummies: dict[str, str]
    label: str
    scale: str
    paired: tuple[str, ...] = ()  # other metrics compared with scratch too (an interval beside the cell, no verdict)

    @property
    def unit(self) -> str:
        return " %" if self.scale == "log_ratio" else " points"

    def effect(self, value: pd.Series | np.ndarray, base: pd.Series | np.ndarray) -> np.ndarray:
        """Per paired run, the effect on the analysis scale (NaN where a log ratio is undefined)."""
        a, b = np.asarray(value, float), np.asarray(base, float)
        if self.scale == "difference":
            return a - b
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.log(a) - np.log(b)
        return np.where(np.isfinite(d), d, np.nan)

    def shown(self, x: float | np.ndarray) -> float | np.ndarray:
        """An effect (or an interval's bound) as it is reported: a % change of the baseline's error, or points."""
        return 100 * np.expm1(x) if self.scale == "log_ratio" else 100 * np.asarray(x)


SCORES = {
    "regression": Scores(
        primary="mae",
        lower_is_better=True,
        others=("rmse", "r2"),
        val="val_mae",
        label="MAE",
        scale="log_ratio",
        dummies={"dummy (mean)": "mean", "dummy (median)": "median"},
    ),
    "classification": Scores(
        primary="roc_auc",
        lower_is_better=False,
        others=("accuracy", "log_loss"),
        val="val_log_loss",
        label="ROC-AUC",
        scale="difference",
        dummies={"dummy (majority)": "majority"},
        paired=("accuracy",),
    ),
}
DUMMIES = tuple(name for sc in SCORES.values() for name in sc.dummies)  # the constant predictors, rows of every summary
# the families' names a report looks up (the others are only shown): each question's, and its mean across properties
ACROSS = "across properties"
CONTROL = "pretrained methods against the control of their budget"
BUDGET = "change per doubling of the pretraining budget"
MEAN = ", across properties"  # (the suffix of a question's family of means)
AVERAGE = "on average across properties, "  # (the words a mean's verdict begins with)


# --------------------------------------------------------------------------- one comparison
@dataclass(frozen=True)
class Estimate:
    """A mean effect on the analysis scale with its standard error and degrees of freedom, and the variance components
    it was built from (each a variance of one run's effect: between folds, between pretraining seeds, the rest)."""

    effect: float
    se: float
    df: float
    n: int = 0
    fold_var: float = math.nan
    pretrain_var: float = math.nan
    run_var: float = math.nan

    @property
    def p_value(self) -> float:
        if not (self.df > 0 and math.isfinite(self.se) and math.isfinite(self.effect)):
            return math.nan
        if self.se == 0:  # identical non-zero effects: p 0
            return float(self.effect == 0)
        return float(2 * student_t.sf(abs(self.effect) / self.se, self.df))

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        """The two-sided `level` interval on the analysis scale."""
        if not (self.df > 0 and math.isfinite(self.se)):
            return math.nan, math.nan
        half = float(student_t.ppf(0.5 + level / 2, self.df)) * self.se
        return self.effect - half, self.effect + half

    def detectable(self, alpha: float = ALPHA, power: float = POWER) -> float:
        """The smallest true effect (on the analysis scale, either sign) that a two-sided test at `alpha` detects with
        probability `power`, given this design's standard error: (t(1 - alpha/2) + t(power)) x se."""
        if not (self.df > 0 and math.isfinite(self.se)):
            return math.nan
        return float((student_t.ppf(1 - alpha / 2, self.df) + student_t.ppf(power, self.df)) * self.se)


def satterthwaite(terms: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(variance, df) of a linear combination sum(a * M) of independent mean squares M with df each, given as
    (a, M, df): the Welch-Satterthwaite approximation."""
    terms = [(a, m, df) for a, m, df in terms if a != 0]
    var = sum(a * m for a, m, _ in terms)
    den = sum((a * m) ** 2 / df for a, m, df in terms if df > 0 and a * m != 0)
    return var, (var * var / den if den > 0 else math.inf)


def corrected_t(diffs: np.ndarray, n_train: float, n_test: float) -> dict[str, float]:
    """The corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for k-fold) for the mean of J
    paired differences from train/test splits: the variance of the mean is (1/J + n_test/n_train) s^2 instead of s^2/J,
    because the splits share training data; df = J - 1. The one-level model: applied to fold means that average several
    seeds, it treats the seeds' noise as fold overlap too (`two_level` does not). Returns the mean, its corrected
    standard error, df and the two-sided p (NaN with fewer than 2 differences)."""
    d = np.asarray(diffs, float)
    if len(d) < 2:
        return {"diff_mean": float(d.mean()) if len(d) else math.nan, "diff_se": math.nan, "df": 0, "p_value": math.nan}
    est = Estimate(float(d.mean()), math.sqrt((1.0 / len(d) + n_test / n_train) * float(d.var(ddof=1))), len(d) - 1)
    return {"diff_mean": est.effect, "diff_se": est.se, "df": est.df, "p_value": est.p_value}


def two_level(a: np.ndarray, overlap: float) -> Estimate:
    """The mean of paired effects a[fold, pretraining seed, finetuning seed] (NaN: no such run) with a variance model of
    two levels: fold effects, whose estimates are correlated because the folds' training sets overlap (their variance
    is inflated by the Nadeau-Bengio factor c = 1 + K x overlap, overlap = n_test/n_train), and seed effects (finetuning
    seeds within a fold; pretraining seeds crossed with the folds where a method has several encoders) that add
    variance without that correlation.

    On the K x P table of (fold, pretraining seed) means of S finetuning seeds each: the fold mean square M_f, the
    pretraining-seed mean square M_p and the residual M_r (the interaction; with one pretraining seed, the within-cell
    variance / S) give, by the method of moments (each component truncated at 0),
        var(mean) = c s2_fold / K + s2_pretrain / P + M_r / (K P),
    s2_fold = (M_f - M_r) / P, s2_pretrain = (M_p - M_r) / K, with Satterthwaite's df, never below the folds' K - 1.
    With one run per cell no seed level can be told from the folds: every variance is then the folds'
    (`corrected_t` of the fold means). Folds missing a pretraining seed are left out, so that the table is complete."""
    a = np.asarray(a, float)
    n_cell = np.isfinite(a).sum(2)
    a = a[(n_cell > 0).all(1)]
    n_cell = n_cell[(n_cell > 0).all(1)]
    if not a.size:
        return Estimate(math.nan, math.nan, 0)
    k, p = n_cell.shape
    m = np.nanmean(a, 2)
    mean, n = float(m.mean()), int(n_cell.sum())
    if k < 2:
        return Estimate(mean, math.nan, 0, n)
    c = 1 + k * overlap
    rows, cols = m.mean(1), m.mean(0)
    m_f = p * float(np.var(rows, ddof=1))
    df_e = float((n_cell - 1).sum())
    s = float(n_cell.size / (1 / n_cell).sum())  # (the harmonic mean of the seeds per cell)
    if p > 1:
        m_p = k * float(np.var(cols, ddof=1))
        m_r, df_r = float(((m - rows[:, None] - cols[None, :] + mean) ** 2).sum() / ((k - 1) * (p - 1))), (k - 1) * (p - 1)
    elif df_e > 0:
        m_p, df_r = math.nan, df_e
        m_r = float(np.nansum((a - m[:, :, None]) ** 2) / df_e / s)
    else:  # one run per fold: no seed level to tell apart, everything is the folds'
        t = corrected_t(m[:, 0], 1.0, overlap)
        return Estimate(mean, t["diff_se"], t["df"], n, fold_var=m_f)
    fold = max(0.0, (m_f - m_r) / p)
    pre = max(0.0, (m_p - m_r) / k) if p > 1 else 0.0
    a_f, a_p = (c / (k * p) if fold > 0 else 0.0), (1 / (k * p) if pre > 0 else 0.0)
    a_r = 1 / (k * p) - a_f - a_p  # (each mean square once, its coefficients summed, for Satterthwaite)
    var, df = satterthwaite([(a_f, m_f, k - 1), (a_p, m_p, p - 1), (a_r, m_r, df_r)])
    return Estimate(mean, math.sqrt(max(var, 0.0)), max(df, k - 1), n, fold_var=fold, pretrain_var=pre, run_var=m_r * s)


def unit_array(units: pd.DataFrame) -> np.ndarray:
    """Paired effects `d` of runs with `fold`, `pretrain_seed` and `seed` as the array `two_level` reads."""
    d = units.dropna(subset=["d"])
    f, p = pd.factorize(d["fold"], sort=True)[0], pd.factorize(d["pretrain_seed"], sort=True)[0]
    r = d.groupby(["fold", "pretrain_seed"]).cumcount().to_numpy()
    a = np.full((f.max() + 1, p.max() + 1, r.max() + 1) if len(d) else (0, 0, 0), np.nan)
    a[f, p, r] = d["d"].to_numpy()
    return a


def random_effects(y: np.ndarray, v: np.ndarray) -> dict[str, float]:
    """The mean of k independent estimates `y` (variances `v`) whose true values may differ: DerSimonian-Laird's
    between-estimate variance tau2, the weighted mean with weights 1 / (v + tau2), and the Hartung-Knapp standard
    error (with the usual truncation at the DerSimonian-Laird one: never narrower than it), df = k - 1. Also
    Cochran's Q and I2 (the share of the spread that is heterogeneity rather than noise)."""
    y, v = np.asarray(y, float), np.asarray(v, float)
    k = len(y)
    if k < 2:
        return {"effect": math.nan, "se": math.nan, "df": 0, "tau2": math.nan, "i2": math.nan, "q": math.nan, "k": k}
    w = 1 / v
    fixed = float((w * y).sum() / w.sum())
    q = float((w * (y - fixed) ** 2).sum())
    tau2 = max(0.0, (q - (k - 1)) / float(w.sum() - (w * w).sum() / w.sum()))
    ws = 1 / (v + tau2)
    mu = float((ws * y).sum() / ws.sum())
    hk = float((ws * (y - mu) ** 2).sum() / (k - 1))
    se = math.sqrt(max(1.0, hk) / float(ws.sum()))
    i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
    return {"effect": mu, "se": se, "df": k - 1, "tau2": tau2, "i2": i2, "q": q, "k": k}


# --------------------------------------------------------------------------- families and words
def holm(p_values: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down adjustment: (adjusted p-values, the level each hypothesis is judged at), in the input
    order; NaN entries are not in the family and stay NaN. The k-th smallest p is tested at alpha/(m - k + 1)
    until the first that fails; every later one keeps that failing step's level."""
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


def benjamini_hochberg(p_values: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg q-values (the false discovery rate at which each p would be a discovery) and the level a
    hypothesis that is not a discovery would have needed to become one (alpha x (R + 1) / m, R the discoveries); NaN
    entries are not in the family."""
    p = np.asarray(p_values, float)
    q, levels = np.full(len(p), np.nan), np.full(len(p), np.nan)
    family = np.flatnonzero(~np.isnan(p))
    m = len(family)
    if not m:
        return q, levels
    order = family[np.argsort(p[family], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    found = int((q[family] < ALPHA).sum())
    levels[family] = np.where(q[family] < ALPHA, ALPHA * found / m, ALPHA * (found + 1) / m)
    return q, levels


ADJUST = {"holm": ("Holm", holm), "bh": ("Benjamini-Hochberg", benjamini_hochberg)}


def finding(row: dict[str, Any] | pd.Series, sc: Scores) -> int:
    """What a judged comparison found: +1 the method is better than its baseline, -1 worse (the family's adjusted p
    below ALPHA), 0 nothing detectable or not tested. The verdict's words and the report's colours come from it."""
    p = row.get("p_adjusted", math.nan)
    if not (math.isfinite(p) and p < ALPHA):
        return 0
    return 1 if (row["change_pct"] < 0) == sc.lower_is_better else -1


def verdict(row: dict[str, Any] | pd.Series, sc: Scores, words: tuple[str, str] = ("helps", "hurts"), prefix: str = "") -> str:
    """The words a comparison may use, from its family's adjusted p: '<better word>' or '<worse word>' where it is
    below ALPHA, else 'no detectable difference' with what the design could have detected at 80 % power (at the level
    the comparison was judged at) and, where the plain 95 % interval excludes 0, that it does not after the family's
    correction. Every interval states its level. `words`: what to say when the method is better, worse;
    `prefix`: the question ('on average across properties, ')."""
    p = row.get("p_adjusted", math.nan)
    if not math.isfinite(p):
        return "not tested"
    u = sc.unit
    text = f"{row['change_pct']:+.1f}{u} (95 % interval {row['ci_low_pct']:+.1f} to {row['ci_high_pct']:+.1f}{u})"
    if finding(row, sc):
        return f"{prefix}{words[0] if finding(row, sc) > 0 else words[1]}: {text}"
    out = f"{prefix}no detectable difference: {text}"
    if row["ci_low_pct"] * row["ci_high_pct"] > 0:
        out += f", which excludes 0 only before the {row['adjust']} correction over {int(row['n_family'])}"
    if math.isfinite(row.get("detect_low_pct", math.nan)):
        out += (
            f"; could have detected a change beyond {row['detect_low_pct']:+.1f}{u} or {row['detect_high_pct']:+.1f}{u} "
            "at 80 % power"
        )
    return out


def judge(
    rows: pd.DataFrame,
    family: str,
    adjust: str,
    sc_of: pd.Series,
    words: tuple[str, str] = ("helps", "hurts"),
    prefix: str = "",
    within: tuple[np.ndarray, np.ndarray, int] | None = None,
) -> pd.DataFrame:
    """One family of comparisons (rows with `effect`, `se`, `df`, `p_value`; `sc_of` each row's Scores): the adjusted p
    (`adjust`: 'holm' or 'bh') over the rows with a p, the detectable change at the level each is judged at, the
    verdict and the family's name and size. `within`: where the rows are part of a larger family (the confirmatory
    one, which spans questions), their adjusted p and levels in it and its size."""
    out = rows.copy()
    name, how = ADJUST[adjust]
    adjusted, levels = how(out["p_value"].to_numpy(float)) if within is None else within[:2]
    size = int(np.isfinite(adjusted).sum()) if within is None else within[2]
    out["p_adjusted"], out["family"], out["adjust"], out["n_family"] = adjusted, family, name, size
    lows, highs = [], []
    for (_, r), level, sc in zip(out.iterrows(), levels, sc_of, strict=True):
        mde = Estimate(r["effect"], r["se"], r["df"]).detectable(level) if math.isfinite(level) else math.nan
        lows.append(float(sc.shown(-mde)))
        highs.append(float(sc.shown(mde)))
    out["detect_low_pct"], out["detect_high_pct"] = lows, highs
    out["verdict"] = [verdict(r, sc, words, prefix) for (_, r), sc in zip(out.iterrows(), sc_of, strict=True)]
    out["finding"] = [finding(r, sc) for (_, r), sc in zip(out.iterrows(), sc_of, strict=True)]
    return out


def estimate_columns(est: Estimate, sc: Scores) -> dict[str, float]:
    """An estimate's columns in a summary: on the analysis scale, and as reported (% or points) with its 95 % interval."""
    lo, hi = est.interval()
    return {
        "effect": est.effect,
        "se": est.se,
        "df": est.df,
        "p_value": est.p_value,
        "n_pairs": est.n,
        "fold_var": est.fold_var,
        "pretrain_var": est.pretrain_var,
        "run_var": est.run_var,
        "change_pct": float(sc.shown(est.effect)),
        "ci_low_pct": float(sc.shown(lo)),
        "ci_high_pct": float(sc.shown(hi)),
    }


# --------------------------------------------------------------------------- runs -> comparisons
def with_defaults(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs recorded before some fields were: the largest subset of the fold, the method itself, unrecorded."""
    if "n_train_fold" not in runs:
        runs = runs.assign(n_train_fold=(runs["n_train"] + runs["n_val"]).groupby(runs["fold"]).transform("max"))
    defaults = {
        "base_method": runs["method"],
        "pretrain_epochs": np.nan,
        "precision": "unrecorded",
        "pretrain_seed": 0,
        "pretrain_pool": None,  # (what a pretraining read: its pool's graphs and guard; None where not recorded)
    }
    return runs.assign(**{k: v for k, v in defaults.items() if k not in runs})


def paired(g: pd.DataFrame, base: pd.DataFrame, sc: Scores, metric: str | None = None) -> pd.DataFrame:
    """A method's runs merged with their baseline partners (the same label fraction, fold and finetuning seed; and the
    same pretraining seed where the baseline has several encoders, a control say, and one for each of the method's),
    with each pair's effect `d` in `metric` (default: the primary) and the fold's n_test / n_train."""
    metric = metric or sc.primary
    on = ["fraction", "fold", "seed"]
    seeds = set(base["pretrain_seed"])
    if len(seeds) > 1 and set(g["pretrain_seed"]) <= seeds:  # (so that the baseline's encoders' spread is seen)
        on.append("pretrain_seed")
    pairs = g.merge(base[[*on, metric]], on=on, suffixes=("", "_base"))
    return pairs.assign(d=sc.effect(pairs[metric], pairs[f"{metric}_base"]), overlap=pairs["n_test"] / pairs["n_train_fold"])


def pooled(pairs: pd.DataFrame) -> Estimate:
    """The effect pooled over label fractions: each (fold, pretraining seed, finetuning seed) unit's effects averaged
    over the fractions first (they share the unit's folds and seeds), then `two_level` over the units."""
    units = pairs.groupby(["fold", "pretrain_seed", "seed"], as_index=False)["d"].mean()
    return two_level(unit_array(units), float(pairs["overlap"].mean()))


def summarize_runs(runs: pd.DataFrame, baseline: str = "scratch", kind: str = "regression") -> pd.DataFrame:
    """Per (method, label fraction): the kind's metrics over runs (`SCORES`: MAE, RMSE, R²; ROC-AUC, accuracy, log
    loss), how runs stopped and which learning rate they chose; against the baseline on the same (fold, finetuning
    seed) pairs, the effect with its two-level standard error (`two_level`), p and 95 % interval, as a % change of
    the baseline's MAE (points of ROC-AUC for a classification).
    Dummy rows per fraction (the training subset's mean and median; its class frequencies), from the baseline's runs;
    a method beats the dummy if its mean primary metric is better than every dummy's; a fraction where no trained
    method does is `failed` (shown and compared all the same, and said to be)."""
    sc = SCORES[kind]
    m, better = sc.primary, (np.less if sc.lower_is_better else np.greater)
    runs = with_defaults(runs)
    base_runs = runs[runs["method"] == baseline]
    rows = []
    for (method, fraction), g in runs.groupby(["method", "fraction"], sort=True):
        row = {
            "method": method,
            "fraction": fraction,
            "n_runs": len(g),
            f"{m}_mean": g[m].mean(),
            "base_method": g["base_method"].iloc[0],
            "pretrain_epochs": g["pretrain_epochs"].iloc[0],
            f"{m}_std": g[m].std(ddof=1) if len(g) > 1 else 0.0,
            **{f"{o}_mean": g[o].mean() for o in sc.others},
            "val_score_mean": g[sc.val].mean(),
            "cap_share": g["hit_cap"].mean(),
            "best_step_median": float(g["best_step"].median()),
            "precision": ", ".join(sorted(set(g["precision"]))),
            "lrs": ", ".join(f"{lr:g} ×{n}" for lr, n in sorted(g["lr"].value_counts().items())),
        }
        base = base_runs[base_runs["fraction"] == fraction]
        if method != baseline and len(base):
            pairs = paired(g, base, sc)
            if len(pairs):
                row |= estimate_columns(two_level(unit_array(pairs), float(pairs["overlap"].mean())), sc)
                row["base_score"] = float(pairs[f"{m}_base"].mean())
                for o in sc.paired:  # the same comparison of a second metric, shown beside it (in no family)
                    o_pairs = paired(g, base, sc, o)
                    e = estimate_columns(two_level(unit_array(o_pairs), float(o_pairs["overlap"].mean())), sc)
                    row |= {
                        f"{o}_change_pct": e["change_pct"],
                        f"{o}_ci_low_pct": e["ci_low_pct"],
                        f"{o}_ci_high_pct": e["ci_high_pct"],
                    }
        rows.append(row)
        if method == baseline:
            once = g.drop_duplicates(["fold", "seed"])
            for name, key in sc.dummies.items():
                col = f"dummy_{key}_{m}"
                rows.append(
                    {
                        "method": name,
                        "fraction": fraction,
                        "n_runs": len(once),
                        f"{m}_mean": once[col].mean(),
                        f"{m}_std": once[col].std(ddof=1) if len(once) > 1 else 0.0,
                        **{f"{o}_mean": once[f"dummy_{key}_{o}"].mean() for o in sc.others},
                    }
                )
    out = pd.DataFrame(rows)
    for col in ("effect", "se", "df", "p_value", "base_score", "change_pct", "ci_low_pct", "ci_high_pct"):
        if col not in out:
            out[col] = np.nan
    dummies = out[out["method"].isin(DUMMIES)].groupby("fraction")[f"{m}_mean"]
    best_dummy = dummies.min() if sc.lower_is_better else dummies.max()
    out["best_dummy"] = out["fraction"].map(best_dummy)  # the score every trained method's mean has to beat
    out["beats_dummy"] = [
        method not in DUMMIES and bool(better(v, bar))  # (NaN: no dummy at that fraction, never beaten)
        for method, v, bar in zip(out["method"], out[f"{m}_mean"], out["best_dummy"], strict=True)
    ]
    ok = out[out["beats_dummy"]].groupby("fraction").size()
    out["failed"] = [f not in ok.index for f in out["fraction"]]
    out["lower_is_better"] = sc.lower_is_better
    out["kind"] = kind
    return out


def kinds_of(rows: pd.DataFrame) -> pd.Series:
    return rows["kind"].map(SCORES) if "kind" in rows else pd.Series([SCORES["regression"]] * len(rows), index=rows.index)


def compare_all(
    summary: pd.DataFrame, words: tuple[str, str] = ("helps", "hurts"), adjust: str = "bh", family: str = "per cell"
) -> pd.DataFrame:
    """The comparisons in rows of `summarize_runs` (one or several properties) as one family (default: the per-cell
    screen, Benjamini-Hochberg q-values): every row with a p is in it, a failed cell too (its verdict says so); scratch
    and the dummies are not comparisons and get no verdict."""
    tested = ~summary["method"].isin(DUMMIES) & summary["p_value"].notna()
    judged = judge(summary[tested], family, adjust, kinds_of(summary[tested]), words)
    out = summary.copy()
    for col in ("p_adjusted", "family", "adjust", "n_family", "detect_low_pct", "detect_high_pct", "verdict", "finding"):
        out[col] = judged[col].reindex(out.index)
    out["finding"] = out["finding"].fillna(0).astype(int)
    compared = out["change_pct"].notna()
    out["verdict"] = np.where(compared & ~tested, "not tested", out["verdict"].fillna(""))
    if "failed" in out:
        out["verdict"] = [
            f"{v} [failed cell: no model beats the dummy]" if f and v else v
            for v, f in zip(out["verdict"], out["failed"], strict=True)
        ]
    return out


@dataclass(frozen=True)
class Named:
    """A comparison named in the config before the runs (`statistics.confirmatory`): `method` against `against`
    (scratch, or a control pretraining of the same budget), pooled over the label fractions, on `property` (None: on
    each property), or with `across` on average across the properties (one comparison)."""

    method: str
    property: str | None = None
    against: str = "scratch"
    across: bool = False

    def __str__(self) -> str:
        on = "on average across properties" if self.across else f"on {self.property or 'each property'}"
        return f"{self.method} against {self.against} {on}"

    def names(self, row: pd.Series) -> bool:
        """Whether a comparison's row (of `method` with `baseline`; a mean across properties has no property) is this one."""
        if row["method"] != self.method or row["baseline"] != self.against:
            return False
        mean = not isinstance(row.get("property"), str)
        return mean if self.across else not mean and self.property in (None, row["property"])


@dataclass(frozen=True)
class Question:
    """The rows of one question before they are judged (each with the `baseline` it is compared with), the family they
    are judged in unless named beforehand, and the verdict's words and prefix."""

    rows: pd.DataFrame
    family: str
    words: tuple[str, str] = ("helps", "hurts")
    prefix: str = ""


def judge_named(questions: list[Question], confirmatory: list[Named] | None) -> tuple[list[pd.DataFrame], list[Named]]:
    """Each question's rows judged (Holm), with the comparisons named beforehand taken out of their questions into one
    confirmatory family: Holm over those alone, whichever questions they answer (each keeps its words); every
    question's other rows are a family of their own. Each frame gains `named`. Also the named comparisons that no row
    here makes (no runs of the method or of what it is compared with, or not a question these rows answer)."""
    chosen = [np.array([any(n.names(r) for n in confirmatory or []) for _, r in q.rows.iterrows()], bool) for q in questions]
    unmade = [n for n in confirmatory or [] if not any(n.names(r) for q in questions for _, r in q.rows.iterrows())]
    p = np.concatenate([q.rows["p_value"].to_numpy(float)[c] for q, c in zip(questions, chosen, strict=True) if c.any()] or [[]])
    adjusted, levels = holm(p)
    size, at, out = int(np.isfinite(adjusted).sum()), 0, []
    for q, c in zip(questions, chosen, strict=True):
        parts = []
        if c.any():
            n = int(c.sum())
            within = (adjusted[at : at + n], levels[at : at + n], size)
            parts.append(judge(q.rows[c], "confirmatory", "holm", kinds_of(q.rows[c]), q.words, q.prefix, within))
            at += n
        if (~c).any():
            parts.append(judge(q.rows[~c], q.family, "holm", kinds_of(q.rows[~c]), q.words, q.prefix))
        named = pd.Series(c, index=q.rows.index)
        out.append(pd.concat(parts).sort_index().assign(named=named) if parts else q.rows.assign(named=named))
    return out, unmade


@dataclass
class Analysis:
    """Every family of one report: `cells` (summarize_runs' rows of every property, each comparison judged in the
    per-cell screen), `primary` (per method x property pooled over the fractions), `across` (per method, and per
    method x label fraction where there are several, over the properties), `foundation` (each foundation model against scratch), `versus` (each
    pretrained method against each foundation model), `control` (each pretrained method against each control of its
    budget) and `budget` (the change per doubling of the budget, `budget_rows`); a row without a property is a mean
    across the properties, column `baseline` what a method is compared with. In `primary`, `across` and `control` the
    rows named beforehand (`named`) are judged in the family 'confirmatory', whichever frame holds them."""

    cells: pd.DataFrame
    primary: pd.DataFrame
    across: pd.DataFrame
    foundation: pd.DataFrame
    versus: pd.DataFrame
    named: bool  # whether the config named the confirmatory comparisons
    control: pd.DataFrame = field(default_factory=pd.DataFrame)
    budget: pd.DataFrame = field(default_factory=pd.DataFrame)
    unmade: list[Named] = field(default_factory=list)  # named beforehand, but no comparison here is it

    def families(self) -> list[dict[str, Any]]:
        """Each family's name, correction and size, in the order a report shows them."""
        frames = [self.across, self.primary, self.foundation, self.versus, self.control, self.budget, self.cells]
        judged = [df[["family", "adjust", "n_family"]] for df in frames if len(df) and "family" in df]
        if not judged:
            return []
        each = pd.concat(judged).dropna(subset=["family"]).drop_duplicates(["family", "adjust"])
        out = [{"family": f, "adjust": a, "n": int(n)} for f, a, n in each.itertuples(index=False)]
        return sorted(out, key=lambda f: f["family"] != "confirmatory")  # (the questions named beforehand first)


def pooled_rows(
    data: dict[str, tuple[pd.DataFrame, str]], methods: list[str], baseline: str, cells: pd.DataFrame
) -> pd.DataFrame:
    """Per property and method: the effect against `baseline` (a column) pooled over the label fractions (`pooled`), with the
    fractions it pools and those whose cell failed (no model beat the dummy; from `cells`, summarize_runs' rows)."""
    rows = []
    for prop, (runs, kind) in data.items():
        sc, runs = SCORES[kind], with_defaults(runs)
        base = runs[runs["method"] == baseline]
        if base.empty:
            continue
        failed = cells[cells["property"] == prop].groupby("fraction")["failed"].first()
        for method in methods:
            g = runs[runs["method"] == method]
            pairs = paired(g, base, sc) if len(g) else g
            if len(pairs):
                fr = sorted(pairs["fraction"].unique())
                rows.append(
                    {
                        "property": prop,
                        "method": method,
                        "baseline": baseline,
                        "kind": kind,
                        "fractions": fr,
                        "failed_fractions": [f for f in fr if failed.get(f, False)],
                        **estimate_columns(pooled(pairs), sc),
                    }
                )
    return pd.DataFrame(rows)


def budget_rows(data: dict[str, tuple[pd.DataFrame, str]]) -> pd.DataFrame:
    """Per property and method swept over pretraining budgets (the runs '<method>-e<epochs>' of one base method, on one
    pool): the change of the test metric per doubling of the budget. Per unit (label fraction, fold, pretraining seed,
    finetuning seed) that ran at every budget, the least-squares slope of the metric on the analysis scale (log MAE,
    ROC-AUC) against log2 of the epochs; scratch cancels from it, and on one pool a doubling of the epochs is a
    doubling of the graph passes. The units' slopes are pooled over the fractions and tested as a paired effect is (`pooled`)."""
    rows = []
    keys = ["fraction", "fold", "pretrain_seed", "seed"]
    for prop, (runs, kind) in data.items():
        sc, runs = SCORES[kind], with_defaults(runs)
        swept = runs[(runs["method"] != runs["base_method"]) & (runs["pretrain_epochs"] >= 1)]
        for method, g in swept.groupby("base_method", sort=True):
            wide = g.pivot_table(index=keys, columns="pretrain_epochs", values=sc.primary, aggfunc="first").dropna()
            epochs = np.asarray(wide.columns, float)
            if len(epochs) < 2 or wide.empty:
                continue
            x = np.log2(epochs) - np.log2(epochs).mean()
            steps = np.column_stack([sc.effect(wide[e], wide[wide.columns[0]]) for e in wide.columns])
            units = wide.index.to_frame(index=False).assign(
                d=steps @ (x / (x * x).sum()), overlap=float((g["n_test"] / g["n_train_fold"]).mean())
            )
            rows.append(
                {
                    "property": prop,
                    "method": method,
                    "kind": kind,
                    "budgets": [int(e) for e in epochs],
                    "fractions": sorted(units["fraction"].unique()),
                    **estimate_columns(pooled(units), sc),
                }
            )
    return pd.DataFrame(rows)


def across_rows(by: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per `keys` group (and kind) of per-property estimates: the random-effects mean over the properties."""
    rows = []
    for key, g in by.dropna(subset=["se"]).groupby([*keys, "kind"], sort=False):
        sc = SCORES[key[-1]]
        re = random_effects(g["effect"].to_numpy(), g["se"].to_numpy() ** 2)
        if re["k"] < 2:
            continue
        est = Estimate(re["effect"], re["se"], re["df"])
        rows.append(
            dict(zip([*keys, "kind"], key, strict=True))
            | estimate_columns(est, sc)
            | {"tau": math.sqrt(re["tau2"]), "i2": re["i2"], "k": re["k"], "properties": sorted(g["property"])}
        )
    return pd.DataFrame(rows)


def per_and_mean(rows: pd.DataFrame, keys: list[str], family: str, words: tuple[str, str]) -> list[Question]:
    """A question asked per property (`rows`) and of the random-effects means across the properties per `keys` group
    ('<family>, across properties'; `property` NaN in those rows): the two, means first, for `judge_named`."""
    mean = across_rows(rows, keys).assign(property=np.nan) if len(rows) else pd.DataFrame()
    return [Question(mean, family + MEAN, words, AVERAGE), Question(rows, family, words)]


def analyse(
    data: dict[str, tuple[pd.DataFrame, str]],
    foundation: list[str] | tuple = (),
    confirmatory: list[Named] | None = None,
    baseline: str = "scratch",
    controls: list[str] | tuple = (),
) -> Analysis:
    """Every family of one report over `data` (property -> (its runs, its kind)): see the module's docstring.
    `foundation`: the methods that are foundation models (compared with scratch in a family of their own, and each
    pretrained method against them); `confirmatory`: the comparisons named in the config before the runs (with
    scratch or a control, per property or on average across them), or None where none were named; `controls`: the methods that are
    a control pretraining (each other pretrained method of the same pretraining epochs is compared with them)."""
    cells = pd.concat([summarize_runs(r, baseline, kind).assign(property=p) for p, (r, kind) in data.items()], ignore_index=True)
    is_f = cells["method"].isin(foundation)
    cells = pd.concat(
        [
            compare_all(cells[~is_f], family="per cell"),
            compare_all(cells[is_f], family="per cell, foundation models against scratch"),
        ]
    ).sort_index()
    ran = sorted(set(cells["method"]) - set(DUMMIES) - {baseline})
    pretrained = [m for m in ran if m not in foundation]
    primary = pooled_rows(data, pretrained, baseline, cells)
    named = confirmatory is not None
    per_fraction = cells[cells["method"].isin(pretrained)].dropna(subset=["se"])
    across = (
        across_rows(primary, ["method", "baseline"]).assign(fraction=np.nan, property=np.nan) if len(primary) else pd.DataFrame()
    )
    several = per_fraction["fraction"].nunique() > 1  # (with one fraction these are `across`'s estimates again)
    by_fraction = across_rows(per_fraction, ["method", "fraction"]) if several else pd.DataFrame()
    found = pooled_rows(data, list(foundation), baseline, cells)
    if len(found):
        found = judge(found, "foundation models against scratch", "holm", kinds_of(found))
    versus = []
    for model in foundation:
        v = pooled_rows(data, pretrained, model, cells)
        if len(v):
            versus.append(
                judge(
                    v,
                    f"pretrained methods against {model}",
                    "holm",
                    kinds_of(v),
                    words=(f"beats {model}", f"{model} better"),
                )
            )
    budget_of = {  # what a method's encoders were pretrained for: epochs, and on what pool (where recorded)
        m: (g["pretrain_epochs"].iloc[0], g["pretrain_pool"].iloc[0])
        for runs, _ in data.values()
        for m, g in with_defaults(runs).groupby("method")
    }
    control = []
    for c in controls:
        same = [m for m in pretrained if m not in controls and c in budget_of and budget_of.get(m) == budget_of[c]]
        control += [pooled_rows(data, same, c, cells)] if same else []
    control = pd.concat(control, ignore_index=True) if control else pd.DataFrame()
    questions = [
        Question(primary, "primary, not named beforehand (exploratory)" if named else "primary (none named beforehand)"),
        Question(across, ACROSS, prefix=AVERAGE),
        *per_and_mean(control, ["method", "baseline"], CONTROL, ("beats the control", "the control better")),
    ]
    (primary, across, control_mean, control), unmade = judge_named(questions, confirmatory)
    if len(by_fraction):  # (never named beforehand: a label fraction is not a question of its own)
        by_fraction = judge(by_fraction, f"{ACROSS}, per label fraction", "holm", kinds_of(by_fraction), prefix=AVERAGE)
        by_fraction = by_fraction.assign(named=False)
    across = pd.concat([across, by_fraction], ignore_index=True)
    control = pd.concat([control_mean, control], ignore_index=True)
    words = ("improves with budget", "worsens with budget")  # (a question never named beforehand)
    budget = pd.concat(judge_named(per_and_mean(budget_rows(data), ["method"], BUDGET, words), None)[0], ignore_index=True)
    if len(budget):  # a mean's budgets: those of its properties' rows
        of = budget.dropna(subset=["property"]).groupby("method")["budgets"].agg(lambda b: sorted(set().union(*b)))
        budget["budgets"] = [
            b if isinstance(b, list) else of[m] for m, b in zip(budget["method"], budget["budgets"], strict=True)
        ]
    return Analysis(
        cells,
        primary,
        across,
        found,
        pd.concat(versus, ignore_index=True) if versus else pd.DataFrame(),
        named,
        control,
        budget,
        unmade,
    )
