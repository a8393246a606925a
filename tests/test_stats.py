"""The statistics of the report, against hand-computed examples and constructed runs."""

import math

import numpy as np
import pandas as pd
import pytest

from matssl.stats import against, compare_all, corrected_t, holm, summarize_runs, t_interval


def t3_cdf(t: float) -> float:
    """Student's t with 3 degrees of freedom in closed form (independent of scipy)."""
    return 0.5 + (t / (math.sqrt(3) * (1 + t * t / 3)) + math.atan(t / math.sqrt(3))) / math.pi


def test_corrected_t_by_hand():
    d = np.array([-0.1, -0.2, -0.3, -0.2])
    r = corrected_t(d, n_train=80, n_test=20)
    # mean -0.2; s^2 = 0.02 / 3; corrected variance of the mean (1/4 + 20/80) s^2 = s^2 / 2
    se = math.sqrt(0.02 / 3 / 2)
    assert r["diff_mean"] == pytest.approx(-0.2) and r["diff_se"] == pytest.approx(se) and r["df"] == 3
    assert r["p_value"] == pytest.approx(2 * (1 - t3_cdf(0.2 / se)))
    # the naive paired t-test would divide by s^2 / 4: the correction makes p larger
    assert r["p_value"] > 2 * (1 - t3_cdf(0.2 / math.sqrt(0.02 / 3 / 4)))
    lo, hi = t_interval(r["diff_mean"], r["diff_se"], r["df"])
    assert (lo, hi) == pytest.approx((-0.2 - 3.182446305 * se, -0.2 + 3.182446305 * se))  # t(0.975, 3)
    assert math.isnan(corrected_t(np.array([-0.1]), 80, 20)["p_value"])
    assert math.isnan(corrected_t(np.array([-0.1, float("nan")]), 80, 20)["p_value"])


def test_holm_by_hand():
    adjusted, levels = holm([0.01, 0.04, 0.03, float("nan")])
    # sorted 0.01, 0.03, 0.04: x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone 0.03, 0.06, 0.06
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])
    # 0.01 rejected at 0.05/3; 0.03 fails at 0.05/2, and 0.04 is judged at that level too, not at 0.05
    assert levels[:3] == pytest.approx([0.05 / 3, 0.05 / 2, 0.05 / 2])
    adjusted, levels = holm([0.03, 0.04])
    assert adjusted == pytest.approx([0.06, 0.06]) and levels == pytest.approx([0.025, 0.025])
    adjusted, levels = holm([0.001, 0.04])
    assert adjusted == pytest.approx([0.002, 0.04]) and levels == pytest.approx([0.025, 0.05])


def test_dummy_metrics_by_hand():
    from matssl.finetune import dummy_metrics

    d = dummy_metrics(np.array([1.0, 2.0, 3.0, 10.0]), np.array([3.0, 5.0]))
    assert d["mean"] == pytest.approx({"mae": 1.0, "rmse": 1.0, "r2": 0.0})  # predicts 4
    assert d["median"] == pytest.approx({"mae": 1.5, "rmse": math.sqrt(3.25), "r2": -2.25})  # predicts 2.5


def runs_frame(effects: dict[str, list[float]], folds: int = 5, seeds: int = 3) -> pd.DataFrame:
    """Constructed runs: scratch MAE 1.0 + noise per (fold, seed); each method adds its effect list cyclically."""
    rng = np.random.default_rng(0)
    rows = []
    for fold in range(folds):
        for seed in range(seeds):
            base = 1.0 + 0.05 * rng.standard_normal()
            for k, (method, eff) in enumerate({"scratch": [0.0], **effects}.items()):
                mae = base + eff[(fold * seeds + seed + k) % len(eff)]
                rows.append({"method": method, "pretrain_seed": 0, "fraction": 1.0, "fold": fold, "seed": seed, "mae": mae,
                             "rmse": 1.2 * mae, "r2": 0.5, "n_train": 72, "n_val": 8, "n_test": 20, "n_train_fold": 80, "val_mae": mae,
                             "lr": 0.001, "best_step": 100, "hit_cap": method == "slow", "precision": "fp32", "dummy_mean_mae": 2.0,
                             "dummy_mean_rmse": 2.4, "dummy_mean_r2": 0.0, "dummy_median_mae": 1.9,
                             "dummy_median_rmse": 2.5, "dummy_median_r2": -0.1})  # fmt: skip
    return pd.DataFrame(rows)


def test_wording_follows_the_corrected_interval():
    runs = runs_frame({"clear": [-0.30, -0.32, -0.28], "noisy": [-0.3, 0.3, -0.25, 0.28, 0.01], "slow": [0.0]})
    s = compare_all(summarize_runs(runs)).set_index("method")
    assert s.loc["clear", "verdict"].startswith("helps: -30.") and s.loc["clear", "corrected_high_pct"] < 0
    assert s.loc["noisy", "verdict"].startswith("no detectable difference (")
    assert s.loc["noisy", "corrected_low_pct"] < 0 < s.loc["noisy", "corrected_high_pct"]
    assert s.loc["slow", "cap_share"] == 1.0 and s.loc["clear", "cap_share"] == 0.0
    # scratch is the baseline, not a comparison; dummies are rows with their own MAE
    assert s.loc["scratch", "verdict"] == "" and s.loc["dummy (median)", "mae_mean"] == pytest.approx(1.9)
    assert s["best_dummy"].tolist() == pytest.approx([1.9] * len(s))  # the better dummy, on every row of the fraction
    assert s.loc["clear", "beats_dummy"] and not s["failed"].any()


def test_a_cell_where_nothing_beats_the_dummy_is_failed():
    runs = runs_frame({"clr": [-0.1]})
    runs["dummy_median_mae"] = 0.5  # a constant beats every model
    s = compare_all(summarize_runs(runs)).set_index("method")
    assert s["failed"].all() and not s["beats_dummy"].any()
    assert s.loc["clr", "verdict"] == "failed: no model beats the dummy" and math.isnan(s.loc["clr", "p_holm"])


def test_summary_pairs_by_fold_and_seed():
    runs = runs_frame({"clr": [-0.5]})
    runs.loc[(runs["method"] == "clr") & (runs["fold"] == 0), "seed"] += 10  # fold 0 of clr has no scratch partner
    s = summarize_runs(runs).set_index("method")
    # the fold is the unit (its seeds averaged): 4 folds with partners, df 3; 20 test / 80 training structures
    assert s.loc["clr", "df"] == 3 and s.loc["clr", "n_runs"] == 15
    pairs = runs[runs["method"] == "clr"].merge(runs[runs["method"] == "scratch"], on=["fold", "seed"])
    per_fold = (pairs["mae_x"] - pairs["mae_y"]).groupby(pairs["fold"]).mean()
    assert s.loc["clr", "diff_se"] == pytest.approx(np.sqrt((1 / 4 + 20 / 80) * per_fold.var(ddof=1)))
    assert math.isnan(s.loc["scratch", "change_pct"]) and s.loc["scratch", "n_runs"] == 15


def test_a_classification_is_compared_on_roc_auc_where_higher_is_better():
    runs = runs_frame({"clear": [-0.10, -0.11, -0.09], "noisy": [-0.1, 0.1, -0.08, 0.09, 0.0]})
    # the same constructed numbers read as scores: ROC-AUC = 1.5 - "mae" (scratch about 0.5 + noise, rising with each
    # negative effect), accuracy and log loss beside it, the class-frequency dummy at 0.5
    runs = runs.assign(roc_auc=1.5 - runs["mae"], accuracy=0.7, log_loss=0.6, val_log_loss=runs["mae"],
                       dummy_majority_roc_auc=0.5, dummy_majority_accuracy=0.6, dummy_majority_log_loss=0.69)  # fmt: skip
    s = compare_all(summarize_runs(runs, kind="classification")).set_index("method")
    assert s.loc["clear", "change_pct"] > 0 and s.loc["clear", "verdict"].startswith("helps: +")
    assert s.loc["noisy", "verdict"].startswith("no detectable difference (")
    assert s.loc["dummy (majority)", "roc_auc_mean"] == 0.5 and "dummy (mean)" not in s.index
    assert s.loc["clear", "beats_dummy"] and s.loc["clear", "accuracy_mean"] == pytest.approx(0.7)
    worse = runs.assign(roc_auc=np.where(runs["method"] == "scratch", runs["roc_auc"], 0.4), dummy_majority_roc_auc=0.45)
    w = compare_all(summarize_runs(worse, kind="classification")).set_index("method")
    assert not w.loc["clear", "beats_dummy"] and w.loc["scratch", "beats_dummy"]  # below 0.45: worse than the dummy
    # accuracy is compared too (an interval beside the cell, outside Holm's family): +0.1 on 0.6 is +16.7 %
    acc = runs.assign(accuracy=np.where(runs["method"] == "clear", 0.7, 0.6))
    a = summarize_runs(acc, kind="classification").set_index("method")
    assert a.loc["clear", "accuracy_change_pct"] == pytest.approx(100 / 6)
    assert a.loc["clear", "accuracy_ci_low_pct"] == pytest.approx(100 / 6)  # no spread: a zero-width interval


def test_pretrained_encoders_against_a_foundation_model_name_the_winner():
    # CHGNet 15 % below scratch; `clear` 30 % below (so about 18 % below CHGNet), `noisy` on either side of it
    runs = runs_frame({"clear": [-0.30, -0.32, -0.28], "noisy": [-0.45, 0.15, -0.4, 0.13, -0.14], "chgnet": [-0.15],
                       "weak": [0.0]})  # fmt: skip
    s = against({"p": (runs, "regression"), "none": (runs[runs["method"] != "chgnet"], "regression")}, "chgnet",
                ["clear", "noisy", "weak"]).set_index("method")  # fmt: skip
    assert list(s.index) == ["clear", "noisy", "weak"] and set(s["property"]) == {"p"}  # no CHGNet, no comparison
    assert s.loc["clear", "verdict"].startswith("beats chgnet: -17.")
    assert s.loc["clear", "base_score"] == pytest.approx(runs[runs["method"] == "chgnet"]["mae"].mean())
    assert s.loc["noisy", "verdict"].startswith("no detectable difference (")
    assert s.loc["weak", "verdict"].startswith("chgnet better: +17.")
    # Holm over the three comparisons with CHGNet (a family of its own): the smallest p is tested at 0.05 / 3
    assert s["p_holm"].min() == pytest.approx(3 * s["p_value"].min())
