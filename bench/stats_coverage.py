"""Are the report's intervals honest? Paired effects drawn with the variance structure of the campaign's runs (folds
whose training sets overlap, finetuning seeds, pretraining seeds, three label fractions), analysed by the two-level
model of `matssl.stats` and by the one-level model it replaced (the corrected t-test of the fold means): the coverage
of the 95 % intervals (target 93-97 %), the false-positive rate with no true effect (target at most 5 %) and the power
against a true 5 % change. Also the random-effects mean over four properties (DerSimonian-Laird, Hartung-Knapp).

    .venv/bin/python bench/stats_coverage.py          # -> bench/results/stats_coverage.{md,json} (about a minute)

The variance components are the campaign's (its 1,800 runs in bench/parts, measured by `matssl.stats.analyse`): the
median cell, a cell whose folds differ most, a cell of two encoders, and one with no fold effect. Fold effects follow
the assumption behind the Nadeau-Bengio correction: the K folds' estimates share a component of variance
overlap x s2_fold (overlap = n_test / n_train = 1 / (K - 1)) besides their own s2_fold. Across label fractions the
fold and encoder effects correlate (0.5), the finetuning seeds' noise does not.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from matssl import ALPHA, Estimate, collect, corrected_t, random_effects, two_level

OUT = Path(__file__).resolve().parent / "results"
K, S, FRACTIONS, OVERLAP, R_FRACTIONS = 5, 3, 3, 0.25, 0.5
CAMPAIGN = [  # the saved parts of the campaign's 1,800 runs (bench/configs/mp.yaml)
    "mp-jdft2d-10",
    "mp-jdft2d-25",
    "mp-jdft2d-100",
    "mp-kvrh-10",
    "mp-kvrh-25",
    "mp-kvrh-100a",
    "mp-kvrh-100b",
    "mp-kvrh-100c",
    "mp-gvrh-10",
    "mp-gvrh-25",
    "mp-gvrh-100a",
    "mp-gvrh-100b",
    "mp-gvrh-100c",
    "mp-gvrh-100d",
    "mp-dielectric-10",
    "mp-dielectric-25",
    "mp-dielectric-100",
]


def draw(rng: np.random.Generator, fold_var: float, run_var: float, pretrain_var: float, p: int, effect: float) -> np.ndarray:
    """One method's paired effects, shape (fractions, K, P, S): effect + shared fold component + the fold's own + the
    encoder's + the run's noise (fractions correlated through the fold and encoder components)."""

    def correlated(*shape: int) -> np.ndarray:  # standard normal, correlation R_FRACTIONS across the fractions
        return math.sqrt(R_FRACTIONS) * rng.standard_normal(shape[1:]) + math.sqrt(1 - R_FRACTIONS) * rng.standard_normal(shape)

    shared = math.sqrt(OVERLAP * fold_var) * correlated(FRACTIONS)
    fold = math.sqrt(fold_var) * correlated(FRACTIONS, K)
    encoder = math.sqrt(pretrain_var) * correlated(FRACTIONS, p)
    noise = math.sqrt(run_var) * rng.standard_normal((FRACTIONS, K, p, S))
    return effect + shared[:, None, None, None] + fold[:, :, None, None] + encoder[:, None, :, None] + noise


def one_level(a: np.ndarray) -> Estimate:
    """The model the statistics had before: the corrected t-test of the fold means (every run of a fold averaged)."""
    t = corrected_t(a.reshape(K, -1).mean(1), 1.0, OVERLAP)
    return Estimate(t["diff_mean"], t["diff_se"], t["df"])


def rates(estimates: list[Estimate], truth: float) -> dict[str, float]:
    lows, highs = np.array([e.interval() for e in estimates]).T
    p = np.array([e.p_value for e in estimates])
    return {
        "coverage": float(((lows <= truth) & (truth <= highs)).mean()),
        "rejected": float((p < ALPHA).mean()),
        "width": float(np.median(highs - lows)),
    }


def scenario(
    rng: np.random.Generator, n: int, fold_var: float, run_var: float, pretrain_var: float = 0.0, p: int = 1, effect: float = 0.0
) -> dict[str, dict[str, float]]:
    """Per model (two-level, one-level) and question (one cell; pooled over the fractions): coverage, rejection rate
    (the false-positive rate at effect 0, the power otherwise) and the median interval width."""
    out: dict[str, list[Estimate]] = {
        "two-level, cell": [],
        "one-level, cell": [],
        "two-level, pooled": [],
        "one-level, pooled": [],
    }
    for _ in range(n):
        a = draw(rng, fold_var, run_var, pretrain_var, p, effect)
        out["two-level, cell"].append(two_level(a[0], OVERLAP))
        out["one-level, cell"].append(one_level(a[0]))
        out["two-level, pooled"].append(two_level(a.mean(0), OVERLAP))
        out["one-level, pooled"].append(one_level(a.mean(0)))
    return {k: rates(v, effect) for k, v in out.items()}


def across(
    rng: np.random.Generator, n: int, fold_var: float, run_var: float, tau: float, properties: int = 4, effect: float = 0.0
) -> dict[str, float]:
    """The random-effects mean over `properties` properties, each pooled over its fractions by the two-level model,
    whose true effects spread with sd `tau` around `effect`."""
    estimates = []
    for _ in range(n):
        per = [
            two_level(draw(rng, fold_var, run_var, 0.0, 1, effect + tau * rng.standard_normal()).mean(0), OVERLAP)
            for _ in range(properties)
        ]
        re = random_effects(np.array([e.effect for e in per]), np.array([e.se for e in per]) ** 2)
        estimates.append(Estimate(re["effect"], re["se"], re["df"]))
    return rates(estimates, effect)


def campaign_components(parts: list[str]) -> dict[str, float]:
    """The variance components of the campaign's cells (per run, on the log-ratio scale), from the saved parts."""
    from parts import PARTS

    a = collect([PARTS / name for name in parts]).analyse()
    cells = a.cells[~a.cells["method"].isin(["chgnet"]) & a.cells["se"].notna()]
    two = cells[cells["pretrain_var"].notna() & (cells["n_pairs"] > K * S)]
    tau = a.across.loc[a.across["fraction"].isna(), "tau"]
    return {
        "fold_median": float(cells["fold_var"].median()),
        "fold_q90": float(cells["fold_var"].quantile(0.9)),
        "run_median": float(cells["run_var"].median()),
        "run_q10": float(cells["run_var"].quantile(0.1)),
        "pretrain_median": float(two["pretrain_var"].median()),
        "pretrain_q90": float(two["pretrain_var"].quantile(0.9)),
        "tau_median": float(tau.median()),
        "tau_max": float(tau.max()),
        "cells": len(cells),
    }


def scenarios(c: dict[str, float]) -> dict[str, dict[str, float]]:
    return {
        "median cell": {"fold_var": c["fold_median"], "run_var": c["run_median"]},
        "folds differ most (90th percentile), little seed noise (10th)": {"fold_var": c["fold_q90"], "run_var": c["run_q10"]},
        "no fold effect": {"fold_var": 0.0, "run_var": c["run_median"]},
        "two encoders (90th percentile of their spread)": {
            "fold_var": c["fold_median"],
            "run_var": c["run_median"],
            "pretrain_var": c["pretrain_q90"],
            "p": 2,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=4000, help="simulated methods per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(OUT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    c = campaign_components(CAMPAIGN)
    results = []
    for name, sc in scenarios(c).items():
        for effect in (0.0, math.log(0.95)):
            for model, r in scenario(rng, args.sims, effect=effect, **sc).items():
                results.append({"scenario": name, "true change %": round(100 * math.expm1(effect), 1), "model": model, **r})
    for tau in (0.0, c["tau_median"], c["tau_max"]):
        for effect in (0.0, math.log(0.95)):
            r = across(rng, args.sims // 4, c["fold_median"], c["run_median"], tau, effect=effect)
            results.append(
                {
                    "scenario": f"four properties, tau {tau:.3f}",
                    "true change %": round(100 * math.expm1(effect), 1),
                    "model": "random effects (DL + HK)",
                    **r,
                }
            )
    df = pd.DataFrame(results)
    out = Path(args.out)
    (out / "stats_coverage.json").write_text(
        json.dumps({"components": c, "sims": args.sims, "seed": args.seed, "results": results}, indent=1) + "\n"
    )
    lines = [
        "# Coverage of the report's intervals (simulated)",
        "",
        f"Variance components of the campaign's {c['cells']} cells (per run, log-ratio scale): between folds median "
        f"{c['fold_median']:.5f} (90th percentile {c['fold_q90']:.5f}); seeds' noise median {c['run_median']:.5f} "
        f"(10th percentile {c['run_q10']:.5f}); between the two encoders of a method median {c['pretrain_median']:.5f} "
        f"(90th percentile {c['pretrain_q90']:.5f}); between properties (tau) median {c['tau_median']:.3f}, largest "
        f"{c['tau_max']:.3f}. "
        f"K = {K} folds, {S} finetuning seeds, {FRACTIONS} label fractions; {args.sims} simulated methods a row "
        f"({args.sims // 4} for the random-effects rows); seed {args.seed}.",
        "",
        "Coverage: the share of 95 % intervals holding the true change (target 93-97 %); rejected: the share with "
        "p < 0.05 (at a true change of 0 the false-positive rate, target at most 5 %; at -5 % the power); width: "
        "the median interval width on the log scale.",
        "",
        "| scenario | true change | model | coverage | rejected | width |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['scenario']} | {r['true change %']:+.1f} % | {r['model']} | {100 * r['coverage']:.1f} % | "
        f"{100 * r['rejected']:.1f} % | {r['width']:.3f} |"
        for r in results
    ]
    (out / "stats_coverage.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(df.groupby("model")[["coverage", "rejected"]].agg(["min", "max"]).to_string())


if __name__ == "__main__":
    main()
