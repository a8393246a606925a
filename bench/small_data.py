"""Small-data selection (issue 41): does scratch beat the better dummy at 10 % and 25 % of jdft2d's labels, and at
what cost per run, under each selection variant of `finetune.small_data`?

    .venv/bin/python bench/small_data.py --variants split cv5-average cv5-refit --cores 2
    # -> bench/results/small_data.{md,json}

Each variant is bench/configs/small_data.yaml with `finetune` changed as VARIANTS says, run by the workflow
(`snakemake --cores N all`) into its own results folder; the table reads each folder's property summary
(`results/properties/jdft2d.json`): per label fraction, scratch's mean test MAE over the 15 runs (5 folds x 3 seeds)
with its standard error, the two dummies', how many runs beat the better dummy of their own fold, the mean paired
difference from the split variant's run of the same fold and seed (meV/atom, with its standard error), and the median
wall time of a run (the variants run one after another on the same machine, two runs side by side, so the times
compare; anything else running at the time shows in them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from matssl import markdown_table, read_json

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "bench" / "configs" / "small_data.yaml"
# each variant's changes to the config's `finetune` (`small_data.below: 0`: the validation split at every size);
# `full-labels`: every label, which is above `below` (a split, as before small-data selection), for the campaign's
# 100 % cell to compare with
VARIANTS = {
    "split": {"small_data": {"below": 0}},
    "cv5-average": {"small_data": {"folds": 5, "final": "average", "shrink": True}},
    "cv5-average-noshrink": {"small_data": {"folds": 5, "final": "average", "shrink": False}},
    "cv5-refit": {"small_data": {"folds": 5, "final": "refit", "shrink": True}},
    "cv3-average": {"small_data": {"folds": 3, "final": "average", "shrink": True}},
    "full-labels": {"fractions": [1.0]},
}


def run_variant(name: str, cores: int) -> Path:
    """The variant's workflow run; its results folder."""
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["results"] = f"{cfg['results']}/{name}"
    cfg["finetune"].update(VARIANTS[name])
    path = ROOT / "results-bench" / f"small-data-{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["snakemake", "all", "--cores", str(cores), "--configfile", str(path)], cwd=ROOT, env=env, check=True)
    return ROOT / cfg["results"]


def scratch_runs(results: Path) -> pd.DataFrame:
    runs = pd.DataFrame(read_json(results / "properties" / "jdft2d.json")["runs"])
    return runs[runs["method"] == "scratch"].set_index(["fraction", "fold", "seed"]).sort_index()


def rows_of(name: str, results: Path, split: pd.DataFrame | None) -> list[dict]:
    """Per fraction: scratch against the dummies, and against the split variant's runs of the same (fold, seed)."""
    runs = scratch_runs(results)
    out = []
    for frac, g in runs.groupby(level="fraction"):
        better = np.minimum(g["dummy_mean_mae"], g["dummy_median_mae"])
        d = (g["mae"] - split["mae"]).dropna() if split is not None else pd.Series(dtype=float)
        out.append(
            {
                "variant": name,
                "fraction": frac,
                "n_runs": len(g),
                "scratch_mae": g["mae"].mean(),
                "scratch_se": g["mae"].std(ddof=1) / np.sqrt(len(g)),
                "median_mae": g["dummy_median_mae"].mean(),
                "mean_mae": g["dummy_mean_mae"].mean(),
                "beats_better_dummy": f"{int((g['mae'] < better).sum())}/{len(g)}",
                "gain_vs_better_pct": 100 * (1 - g["mae"].mean() / better.mean()),
                "minus_split": d.mean() if len(d) else np.nan,
                "minus_split_se": d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan,
                "wall_s_median": g["wall_s"].median(),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "small_data"))
    args = ap.parse_args()
    rows, split = [], None
    for name in args.variants:  # (split first: the others are compared with it run by run)
        results = run_variant(name, args.cores)
        split = scratch_runs(results) if name == "split" else split
        rows += rows_of(name, results, split)
    table = pd.DataFrame(rows)
    split_wall = table[table["variant"] == "split"].set_index("fraction")["wall_s_median"]
    table["cost_vs_split"] = [r.wall_s_median / split_wall.get(r.fraction, np.nan) for r in table.itertuples()]
    Path(args.out).with_suffix(".json").write_text(json.dumps(table.to_dict(orient="records"), indent=1) + "\n")
    shown = table.assign(
        **{
            c: table[c].map(lambda v: f"{v:.2f}")
            for c in (
                "scratch_mae",
                "scratch_se",
                "median_mae",
                "mean_mae",
                "gain_vs_better_pct",
                "cost_vs_split",
                "minus_split",
                "minus_split_se",
            )
        }
    )
    shown["wall_s_median"] = table["wall_s_median"].map(lambda v: f"{v:.1f}")
    text = "\n".join(markdown_table(list(shown.columns), shown.to_numpy().tolist()))
    Path(args.out).with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
