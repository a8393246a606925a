"""The statistics of the report, against hand-computed examples and constructed runs."""

import math

import numpy as np
import pandas as pd
import pytest

from matssl.stats import (
    SCORES,
    Estimate,
    Named,
    analyse,
    benjamini_hochberg,
    compare_all,
    corrected_t,
    holm,
    random_effects,
    summarize_runs,
    two_level,
)


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
    lo, hi = Estimate(r["diff_mean"], r["diff_se"], r["df"]).interval()
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


def test_benjamini_hochberg_by_hand():
    q, levels = benjamini_hochberg([0.01, 0.04, 0.03, float("nan"), 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 (m = 4): x4, x2, x4/3, x1 = 0.04, 0.06, 0.0533, 0.5 -> from the top 0.04, 0.0533, ...
    assert q[[0, 2, 1, 4]] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5]) and math.isnan(q[3])
    # one discovery: the others would have needed p at 0.05 x 2 / 4 rank-wise
    assert levels[0] == pytest.approx(0.05 / 4) and levels[1] == pytest.approx(0.05 * 2 / 4)


def test_two_level_by_hand():
    # one pretraining seed, 3 folds x 2 finetuning seeds; fold means equal: no fold variance, only the seeds' noise
    a = np.array([[[0.1, 0.3]], [[0.2, 0.2]], [[0.4, 0.0]]])
    e = two_level(a, overlap=0.5)
    m_r = (0.02 + 0.0 + 0.08) / 3 / 2  # the within-fold variance pooled (df 3), over 2 seeds
    assert e.effect == pytest.approx(0.2) and e.se == pytest.approx(math.sqrt(m_r / 3)) and e.df == 3
    assert e.fold_var == 0 and e.run_var == pytest.approx(m_r * 2)
    # fold means 0.1, 0.2, 0.6: M_f = 0.07; the fold component (M_f - M_r) is inflated by c = 1 + 3 x 0.5 alone
    b = a + np.array([-0.1, 0.0, 0.4])[:, None, None]
    e = two_level(b, overlap=0.5)
    m_f, c = float(np.var([0.1, 0.2, 0.6], ddof=1)), 2.5
    var = c * (m_f - m_r) / 3 + m_r / 3
    assert e.se == pytest.approx(math.sqrt(var)) and e.fold_var == pytest.approx(m_f - m_r)
    df = var**2 / ((c * m_f / 3) ** 2 / 2 + ((1 - c) * m_r / 3) ** 2 / 3)  # Satterthwaite, floored at K - 1 = 2
    assert e.df == pytest.approx(max(df, 2))
    # the one-level model (every variance the folds') is wider here: it inflates the seeds' noise too
    assert corrected_t(b.mean((1, 2)), 1.0, 0.5)["diff_se"] > e.se
    # one run per fold: no seed level, the corrected t-test of the fold means
    one = two_level(b[:, :, :1], overlap=0.5)
    assert one.se == pytest.approx(corrected_t(b[:, 0, 0], 1.0, 0.5)["diff_se"]) and one.df == 2


def test_two_level_with_two_encoders_by_hand():
    # 3 folds x 2 pretraining seeds, one finetuning seed: fold, encoder and residual mean squares of the table
    m = np.array([[0.0, 0.2], [0.1, 0.5], [0.2, 0.3]])
    e = two_level(m[:, :, None], overlap=0.25)
    rows, cols, grand = m.mean(1), m.mean(0), m.mean()
    m_f, m_p = 2 * np.var(rows, ddof=1), 3 * np.var(cols, ddof=1)
    m_r = ((m - rows[:, None] - cols[None, :] + grand) ** 2).sum() / 2
    fold, pre = max(0, (m_f - m_r) / 2), max(0, (m_p - m_r) / 3)
    assert e.effect == pytest.approx(grand) and e.pretrain_var == pytest.approx(pre) and e.fold_var == pytest.approx(fold)
    assert e.se**2 == pytest.approx(1.75 * fold / 3 + pre / 2 + m_r / 6)
    # a fold missing one encoder's runs is left out (the table stays complete)
    gap = m[:, :, None].copy()
    gap[0, 1, 0] = np.nan
    assert two_level(gap, 0.25).effect == pytest.approx(m[1:].mean())


def test_random_effects_by_hand():
    r = random_effects(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    # Q = 0.5 < k - 1: no heterogeneity; the Hartung-Knapp factor (0.5) is truncated at 1: se = sqrt(1 / 2)
    assert r["tau2"] == 0 and r["effect"] == pytest.approx(0.5) and r["se"] == pytest.approx(math.sqrt(0.5)) and r["df"] == 1
    y, v = np.array([-0.3, 0.0, 0.3]), np.array([0.01, 0.01, 0.01])
    r = random_effects(y, v)
    # Q = 18 on 2 df: tau2 = (18 - 2) / (300 - 100) = 0.08, I2 = 16 / 18
    assert r["q"] == pytest.approx(18) and r["tau2"] == pytest.approx(0.08) and r["i2"] == pytest.approx(16 / 18)
    # Hartung-Knapp: sum w (y - mu)^2 / (k - 1) / sum w, w = 1 / (v + tau2) = 1 / 0.09
    assert r["se"] == pytest.approx(math.sqrt((0.18 / 0.09 / 2) / (3 / 0.09)))
    assert math.isnan(random_effects(np.array([0.1]), np.array([0.01]))["effect"])  # one property: no mean over them


def runs_frame(effects: dict[str, list[float]], folds: int = 5, seeds: int = 3, fractions=(1.0,)) -> pd.DataFrame:
    """Constructed runs: scratch MAE 1.0 + noise per (fold, seed); each method adds its effect list cyclically."""
    rng = np.random.default_rng(0)
    rows = []
    for fraction in fractions:
        for fold in range(folds):
            for seed in range(seeds):
                base = 1.0 + 0.05 * rng.standard_normal()
                for k, (method, eff) in enumerate({"scratch": [0.0], **effects}.items()):
                    mae = base + eff[(fold * seeds + seed + k) % len(eff)]
                    rows.append(
                        {
                            "method": method,
                            "pretrain_seed": 0,
                            "fraction": fraction,
                            "fold": fold,
                            "seed": seed,
                            "mae": mae,
                            "rmse": 1.2 * mae,
                            "r2": 0.5,
                            "n_train": 72,
                            "n_val": 8,
                            "n_test": 20,
                            "n_train_fold": 80,
                            "val_mae": mae,
                            "lr": 0.001,
                            "best_step": 100,
                            "hit_cap": method == "slow",
                            "precision": "fp32",
                            "dummy_mean_mae": 2.0,
                            "dummy_mean_rmse": 2.4,
                            "dummy_mean_r2": 0.0,
                            "dummy_median_mae": 1.9,
                            "dummy_median_rmse": 2.5,
                            "dummy_median_r2": -0.1,
                        }
                    )
    return pd.DataFrame(rows)


def test_wording_follows_the_family_and_states_what_it_could_detect():
    runs = runs_frame({"clear": [-0.30, -0.32, -0.28], "noisy": [-0.3, 0.3, -0.25, 0.28, 0.01], "slow": [0.0]})
    s = compare_all(summarize_runs(runs)).set_index("method")
    assert s.loc["clear", "verdict"].startswith("helps: -30.") and "(95 % interval -" in s.loc["clear", "verdict"]
    assert s.loc["clear", "ci_high_pct"] < 0 and s.loc["clear", "family"] == "per cell" and s.loc["clear", "n_family"] == 3
    noisy = s.loc["noisy", "verdict"]
    assert noisy.startswith("no detectable difference: ") and "could have detected a change beyond -" in noisy
    assert s.loc["noisy", "detect_low_pct"] < 0 < s.loc["noisy", "detect_high_pct"]
    assert s.loc["noisy", "ci_low_pct"] < 0 < s.loc["noisy", "ci_high_pct"]
    assert s.loc["slow", "cap_share"] == 1.0 and s.loc["clear", "cap_share"] == 0.0
    # scratch is the baseline, not a comparison; dummies are rows with their own MAE
    assert s.loc["scratch", "verdict"] == "" and s.loc["dummy (median)", "mae_mean"] == pytest.approx(1.9)
    assert s["best_dummy"].tolist() == pytest.approx([1.9] * len(s))  # the better dummy, on every row of the fraction
    assert s.loc["clear", "beats_dummy"] and not s["failed"].any()


def test_a_change_is_a_log_ratio_and_never_passes_minus_100_percent():
    runs = runs_frame({"much": [-0.9, -0.88, -0.85, -0.5, -0.8]})  # errors of about 0.1 to 0.5 against scratch's 1
    s = summarize_runs(runs).set_index("method")
    assert -100 < s.loc["much", "ci_low_pct"] < s.loc["much", "change_pct"] < s.loc["much", "ci_high_pct"] < 0
    pairs = runs[runs["method"] == "much"].merge(runs[runs["method"] == "scratch"], on=["fold", "seed"])
    geo = np.exp(np.log(pairs["mae_x"] / pairs["mae_y"]).mean()) - 1  # the geometric mean ratio of the paired runs
    assert s.loc["much", "change_pct"] == pytest.approx(100 * geo)


def test_a_failed_cell_is_shown_compared_and_said_to_be():
    runs = runs_frame({"clr": [-0.1]})
    runs["dummy_median_mae"] = 0.5  # a constant beats every model
    s = compare_all(summarize_runs(runs)).set_index("method")
    assert s["failed"].all() and not s["beats_dummy"].any()
    assert s.loc["clr", "verdict"].endswith("[failed cell: no model beats the dummy]") and s.loc["clr", "p_adjusted"] < 0.05


def test_a_failed_cell_names_its_likely_causes():
    from matssl.evaluate import tail_share
    from matssl.report import failure_notes

    runs = runs_frame({"clr": [-0.1]})
    runs["dummy_median_mae"] = 0.5  # a constant beats every model
    [note] = failure_notes(runs, summarize_runs(runs), {"tail_share": 0.08}, SCORES["regression"], "eV")
    assert note.startswith("At 100% of the labels no trained model beats the better dummy (dummy (median): 0.500 eV; the best ")
    assert "80 labelled structures" in note and "validation split of 8 of them, too few" in note
    assert "8.0% of the property's labels lie more than 3 robust standard deviations" in note
    cv = runs.assign(selection="5-fold cross-validation (average)", n_train=80, n_val=80)
    [note] = failure_notes(cv, summarize_runs(cv), {}, SCORES["regression"], "")
    assert "80 labelled structures and chose its weights by 5-fold cross-validation (average) over all of them." in note
    assert "robust" not in note  # (no tail share known)
    fine = runs_frame({"clr": [-0.1]})
    assert failure_notes(fine, summarize_runs(fine), {"tail_share": 0.08}, SCORES["regression"], "") == []
    some = runs_frame({"clr": [-0.5]})
    some["dummy_median_mae"] = 0.8  # beaten by clr (about 0.5), not by scratch (about 1.0)
    [note] = failure_notes(some, summarize_runs(some), {}, SCORES["regression"], "")
    assert note.startswith("At 100% of the labels scratch (") and "does not beat the better dummy (dummy (median): 0.800)" in note
    # the tail share by hand: 0..99 has an IQR of 49.5 (3 robust sd = 110), so only the four at 1000 lie beyond
    assert tail_share(np.r_[np.arange(100.0), [1000.0] * 4]) == pytest.approx(4 / 104)
    assert tail_share(np.arange(100.0)) == 0.0 and np.isnan(tail_share(np.ones(10)))


def test_summary_pairs_by_fold_and_seed():
    runs = runs_frame({"clr": [-0.5]})
    runs.loc[(runs["method"] == "clr") & (runs["fold"] == 0), "seed"] += 10  # fold 0 of clr has no scratch partner
    s = summarize_runs(runs).set_index("method")
    assert s.loc["clr", "n_pairs"] == 12 and s.loc["clr", "n_runs"] == 15
    pairs = runs[runs["method"] == "clr"].merge(runs[runs["method"] == "scratch"], on=["fold", "seed"])
    d = np.log(pairs["mae_x"]) - np.log(pairs["mae_y"])
    a = d.to_numpy().reshape(4, 1, 3)  # 4 folds with partners, one encoder, 3 seeds; 20 test / 80 training structures
    assert s.loc["clr", "se"] == pytest.approx(two_level(a, 20 / 80).se) and s.loc["clr", "effect"] == pytest.approx(d.mean())
    assert math.isnan(s.loc["scratch", "change_pct"]) and s.loc["scratch", "n_runs"] == 15


def test_a_classification_is_compared_on_roc_auc_points():
    runs = runs_frame({"clear": [-0.10, -0.11, -0.09], "noisy": [-0.1, 0.1, -0.08, 0.09, 0.0]})
    # the same constructed numbers read as scores: ROC-AUC = 1.5 - "mae" (scratch about 0.5 + noise, rising with each
    # negative effect), accuracy and log loss beside it, the class-frequency dummy at 0.5
    runs = runs.assign(
        roc_auc=1.5 - runs["mae"],
        accuracy=0.7,
        log_loss=0.6,
        val_log_loss=runs["mae"],
        dummy_majority_roc_auc=0.5,
        dummy_majority_accuracy=0.6,
        dummy_majority_log_loss=0.69,
    )
    s = compare_all(summarize_runs(runs, kind="classification")).set_index("method")
    assert s.loc["clear", "change_pct"] == pytest.approx(10.0) and s.loc["clear", "verdict"].startswith("helps: +10.0 points")
    assert s.loc["noisy", "verdict"].startswith("no detectable difference: ")
    assert s.loc["dummy (majority)", "roc_auc_mean"] == 0.5 and "dummy (mean)" not in s.index
    assert s.loc["clear", "beats_dummy"] and s.loc["clear", "accuracy_mean"] == pytest.approx(0.7)
    worse = runs.assign(roc_auc=np.where(runs["method"] == "scratch", runs["roc_auc"], 0.4), dummy_majority_roc_auc=0.45)
    w = compare_all(summarize_runs(worse, kind="classification")).set_index("method")
    assert not w.loc["clear", "beats_dummy"] and w.loc["scratch", "beats_dummy"]  # below 0.45: worse than the dummy
    # accuracy is compared too (an interval beside the cell, in no family): +0.1 is +10 points
    acc = runs.assign(accuracy=np.where(runs["method"] == "clear", 0.7, 0.6))
    a = summarize_runs(acc, kind="classification").set_index("method")
    assert a.loc["clear", "accuracy_change_pct"] == pytest.approx(10.0)
    assert a.loc["clear", "accuracy_ci_low_pct"] == pytest.approx(10.0)  # no spread: a zero-width interval


def test_one_label_fraction_is_not_asked_twice_across_properties():
    # with one fraction, the mean per label fraction is the mean across properties again: no second family
    data = {p: (runs_frame({"clear": [-0.30, -0.32]}, fractions=(0.1,)), "regression") for p in ["a", "b"]}
    fams = {f["family"] for f in analyse(data).families()}
    assert "across properties" in fams and "across properties, per label fraction" not in fams


def test_analyse_asks_each_question_in_a_family_of_its_own():
    # three properties, two fractions; `small` 4 % better everywhere (too small for one cell), `none` no change,
    # chgnet 15 % below scratch, `clear` 30 % below: every family and its size
    effects = {
        "small": [-0.04, -0.05, -0.03],
        "none": [0.03, -0.03, 0.02, -0.02, 0.0],
        "chgnet": [-0.15],
        "clear": [-0.30, -0.32, -0.28],
    }
    data = {
        p: (runs_frame(effects, fractions=(0.1, 1.0)).assign(mae=lambda r, k=k: r["mae"] * (1 + 0.1 * k)), "regression")
        for k, p in enumerate(["a", "b", "c"])
    }
    a = analyse(data, foundation=["chgnet"])
    fams = {f["family"]: (f["adjust"], f["n"]) for f in a.families()}
    assert fams == {
        "across properties": ("Holm", 3),
        "across properties, per label fraction": ("Holm", 6),
        "primary (none named beforehand)": ("Holm", 9),
        "foundation models against scratch": ("Holm", 3),
        "pretrained methods against chgnet": ("Holm", 9),
        "per cell": ("Benjamini-Hochberg", 18),
        "per cell, foundation models against scratch": ("Benjamini-Hochberg", 6),
    }
    assert not a.named and "chgnet" not in set(a.primary["method"]) and set(a.foundation["method"]) == {"chgnet"}
    across = a.across[a.across["fraction"].isna()].set_index("method")
    assert across.loc["clear", "verdict"].startswith("on average across properties, helps: -30.")
    assert across.loc["none", "verdict"].startswith("on average across properties, no detectable difference")
    assert across.loc["clear", "k"] == 3 and across.loc["clear", "properties"] == ["a", "b", "c"]
    v = a.versus.set_index(["property", "method"])
    assert v.loc[("a", "clear"), "verdict"].startswith("beats chgnet: -1") and v.loc[("a", "none"), "verdict"].startswith(
        "chgnet better"
    )
    # named beforehand: those alone are the confirmatory family, the rest a family of their own
    b = analyse(data, foundation=["chgnet"], confirmatory=[Named("small"), Named("clear", "a")])
    named = b.primary[b.primary["named"]]
    assert sorted(zip(named["property"], named["method"], strict=True)) == [
        ("a", "clear"),
        ("a", "small"),
        ("b", "small"),
        ("c", "small"),
    ]
    assert set(named["family"]) == {"confirmatory"} and set(named["n_family"]) == {4}
    assert set(b.primary.loc[~b.primary["named"], "family"]) == {"primary, not named beforehand (exploratory)"}
    # a mean across the properties named too: one Holm family over the five, whichever question each answers
    c = analyse(data, foundation=["chgnet"], confirmatory=[Named("small"), Named("clear", "a"), Named("none", across=True)])
    fams = {f["family"]: f["n"] for f in c.families()}
    assert fams["confirmatory"] == 5 and fams["across properties"] == 2 and list(fams)[0] == "confirmatory"
    mean = c.across[c.across["fraction"].isna()].set_index("method")
    assert mean.loc["none", "named"] and mean.loc["none", "family"] == "confirmatory"
    assert mean.loc["none", "verdict"].startswith("on average across properties, no detectable difference")
    judged = pd.concat([c.primary[c.primary["named"]], mean[mean["named"]].reset_index()])
    assert sorted(judged["p_adjusted"]) == pytest.approx(sorted(holm(judged["p_value"].to_numpy())[0]))
    assert not mean.loc["clear", "named"] and mean.loc["clear", "family"] == "across properties"


def test_the_intervals_cover_in_a_simulation():
    """The fast version of bench/stats_coverage.py: the campaign's median cell, 400 simulated methods."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from stats_coverage import scenario

    r = scenario(np.random.default_rng(0), 400, fold_var=0.0003, run_var=0.0033)
    for model in ("two-level, cell", "two-level, pooled"):
        assert 0.92 <= r[model]["coverage"] <= 0.985, (model, r[model])
    # the one-level model is wider for the same runs (it inflates the seeds' noise as if it were fold overlap)
    assert r["one-level, cell"]["width"] > 1.2 * r["two-level, cell"]["width"]


def swept_runs(effects: dict[str, list[float]], scale: float = 1.0, noise: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """`runs_frame` at 10 % of the labels, 6 seeds, with '<method>-e<epochs>' read as a budget sweep of <method>, and
    every run's MAE scaled by `scale` and a log-normal `noise`."""
    r = runs_frame(effects, seeds=6, fractions=(0.1,))
    r["base_method"] = r["method"].str.split("-e").str[0]
    r["pretrain_epochs"] = [int(m.split("-e")[1]) if "-e" in m else 0 for m in r["method"]]
    return r.assign(mae=r["mae"] * scale * np.exp(noise * np.random.default_rng(seed).standard_normal(len(r))))


def test_the_change_per_doubling_of_the_budget_is_the_slope_over_every_budget():
    # fp: 2, 6, 10 % below scratch at 1, 4, 16 epochs (log2: 0, 2, 4): about -2.1 % a doubling; ctl: flat but for the
    # last budget; every property the same but for its scale
    effects = {"fp-e1": [-0.02], "fp-e4": [-0.06], "fp-e16": [-0.10], "ctl-e1": [0.0], "ctl-e4": [0.0], "ctl-e16": [-0.01]}
    data = {p: (swept_runs(effects, 1 + 0.1 * k, seed=k), "regression") for k, p in enumerate("abcd")}
    a = analyse(data, controls=["ctl-e1", "ctl-e4", "ctl-e16"])
    b = a.budget.set_index([a.budget["property"].fillna("mean"), "method"])
    # by hand, without noise: the least-squares slope of log MAE on log2 epochs, averaged over the units
    x = np.log2([1, 4, 16]) - 2
    runs = data["a"][0]
    wide = runs[runs["base_method"] == "fp"].pivot_table(index=["fold", "seed"], columns="pretrain_epochs", values="mae")
    slope = float((np.log(wide[[1, 4, 16]].to_numpy()) @ (x / (x * x).sum())).mean())
    assert b.loc[("a", "fp"), "effect"] == pytest.approx(slope)
    assert b.loc[("a", "fp"), "change_pct"] == pytest.approx(100 * math.expm1(slope))
    assert -2.5 < b.loc[("mean", "fp"), "change_pct"] < -1.7 and b.loc[("mean", "fp"), "budgets"] == [1, 4, 16]
    assert b.loc[("mean", "fp"), "verdict"].startswith("on average across properties, improves with budget: -2.")
    assert b.loc[("mean", "fp"), "k"] == 4 and b.loc[("a", "fp"), "budgets"] == [1, 4, 16]
    assert (b["ci_low_pct"] < b["change_pct"]).all() and (b["change_pct"] < b["ci_high_pct"]).all()
    # each method against the control of its budget, nothing else (scratch, the other budgets, the controls themselves)
    c = a.control
    assert sorted(set(zip(c["method"], c["baseline"], strict=True))) == [
        ("fp-e1", "ctl-e1"),
        ("fp-e16", "ctl-e16"),
        ("fp-e4", "ctl-e4"),
    ]
    mean = c[c["property"].isna()].set_index("method")
    assert mean.loc["fp-e4", "verdict"].startswith("on average across properties, beats the control: -6.")
    assert mean.loc["fp-e1", "change_pct"] == pytest.approx(-2.0, abs=0.5)
    # named beforehand: against the control, on average across the properties
    n = analyse(data, controls=["ctl-e1", "ctl-e4", "ctl-e16"], confirmatory=[Named("fp-e16", against="ctl-e16", across=True)])
    named = n.control[n.control["named"]]
    assert len(named) == 1 and named["property"].isna().all() and named["family"].tolist() == ["confirmatory"]
    assert named["verdict"].iloc[0].startswith("on average across properties, beats the control")
    assert {f["family"]: f["n"] for f in n.families()}["confirmatory"] == 1
    fams = {f["family"]: f["n"] for f in a.families()}
    assert fams["pretrained methods against the control of their budget"] == 12
    assert fams["pretrained methods against the control of their budget, across properties"] == 3
    assert fams["change per doubling of the pretraining budget"] == 8
    assert fams["change per doubling of the pretraining budget, across properties"] == 2


def test_a_budget_that_changes_nothing_is_no_detectable_difference_and_says_what_it_could_have_seen():
    effects = {"fp-e1": [-0.05], "fp-e4": [-0.05], "fp-e16": [-0.05]}
    data = {p: (swept_runs(effects, 1 + 0.1 * k, noise=0.03, seed=k), "regression") for k, p in enumerate("abcd")}
    b = analyse(data).budget
    mean = b[b["property"].isna()].iloc[0]
    assert mean["ci_low_pct"] < 0 < mean["ci_high_pct"]
    assert mean["verdict"].startswith("on average across properties, no detectable difference")
    assert "could have detected a change beyond" in mean["verdict"]
    # one budget alone is no sweep: no slope, no family
    one = {p: (swept_runs({"fp-e4": [-0.05]}), "regression") for p in "ab"}
    assert analyse(one).budget.empty and analyse(one).control.empty


def test_the_control_and_budget_families_reach_the_report_s_tables():
    from matssl.report import answer, markdown_families

    effects = {"fp-e1": [-0.02], "fp-e4": [-0.06], "ctl-e1": [0.0], "ctl-e4": [0.0]}
    data = {p: (swept_runs(effects, 1 + 0.1 * k, seed=k), "regression") for k, p in enumerate("abcd")}
    a = analyse(data, controls=["ctl-e1", "ctl-e4"])
    ans = answer(a, {})
    assert [(r["method"], r["baseline"], r["k"]) for r in ans["control"]["across"]] == [
        ("fp-e1", "ctl-e1", 4),
        ("fp-e4", "ctl-e4", 4),
    ]
    assert len(ans["control"]["per"]) == 8 and ans["budget"]["across"][0]["budgets"] == "1, 4"
    md = "\n".join(markdown_families(a))
    assert "### Against the control of the same budget, on average across the properties (Holm)" in md
    assert "| fp | 1, 4 | 4 |" in md  # the mean's budgets, properties
    assert not ans["confirmatory"] and "Named beforehand" not in md
    # comparisons named beforehand lead the answer, in one table whichever question each answers
    named = [Named("fp-e4", against="ctl-e4", across=True), Named("fp-e1", "b")]
    ans = answer(analyse(data, controls=["ctl-e1", "ctl-e4"], confirmatory=named), {})
    assert [(r["method"], r["against"], r["on"]) for r in ans["confirmatory"]] == [
        ("fp-e1", "scratch", "b"),
        ("fp-e4", "ctl-e4", "average across the properties"),
    ]
    assert [r["named"] for r in ans["control"]["across"]] == [False, True]
    md = "\n".join(markdown_families(analyse(data, controls=["ctl-e1", "ctl-e4"], confirmatory=named)))
    assert "### Named beforehand: the confirmatory comparisons (Holm)" in md and "| fp-e4 | ctl-e4 | average across" in md
    assert ans["n"]["control_across"] == 1 and ans["n"]["family"]["confirmatory"] == 2 and not ans["unmade"]
    # one that no comparison here makes (no runs of the control it names) is said to be left out
    a = analyse(data, controls=["ctl-e1", "ctl-e4"], confirmatory=[*named, Named("fp-e4", against="ctl-e16")])
    assert a.unmade == [Named("fp-e4", against="ctl-e16")]
    assert "fp-e4 against ctl-e16 on each property." in answer(a, {})["unmade"]


def test_a_control_pairs_encoder_by_encoder_and_only_within_its_pool():
    from matssl.stats import paired

    one = swept_runs({"fp-e4": [-0.05], "ctl-e4": [0.0]})
    two = pd.concat([one, one.assign(pretrain_seed=1)], ignore_index=True)
    fp, ctl = two[two["method"] == "fp-e4"], two[two["method"] == "ctl-e4"]
    assert len(paired(fp, ctl, SCORES["regression"])) == len(fp)  # not every encoder with every encoder
    assert len(paired(fp, ctl[ctl["pretrain_seed"] == 0], SCORES["regression"])) == len(fp)  # one control: each pairs with it
    # a method pretrained on another pool is not compared with the control
    data = {p: (one.assign(pretrain_pool=np.where(one["method"] == "fp-e4", "big", "small")), "regression") for p in "ab"}
    assert analyse(data, controls=["ctl-e4"]).control.empty
    data = {p: (one.assign(pretrain_pool="big"), "regression") for p in "ab"}
    assert set(analyse(data, controls=["ctl-e4"]).control["method"]) == {"fp-e4"}
