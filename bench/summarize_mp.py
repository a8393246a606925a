"""Summarise the real-data benchmark (bench/configs/mp.yaml) for the README and bench/results/.

    snakemake --cores all all --configfile bench/configs/mp.yaml     # the run (hours on 2 CPU cores)
    .venv/bin/python bench/summarize_mp.py                          # -> bench/results/mp_benchmark.{md,json}, mp_report.html

Reads the per-property targets, the probe stages and the pretraining manifests of the run; writes a
Markdown summary with the published numbers beside ours, and copies the report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd

from matssl.report import excluded_text, fmt

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"

# Published MAEs on the same tasks (../shared/data/README.md, ../shared/METHODS.md). The elasticity
# numbers are Matbench's log_kvrh/log_gvrh (10,987 structures), not our 3,191-structure set: indicative only.
PUBLISHED = {
    "jdft2d": "Matbench: CGCNN 49.24, ALIGNN 43.42, MODNet 33.19, dummy 67.29; DSSL 36.29 (their baseline 48.11); "
    "Crystal Twins 46.79",
    "dielectric": "Matbench: CGCNN 0.5988, ALIGNN 0.3449, MODNet 0.2711, dummy 0.8088; DSSL 0.342 (baseline 0.393); "
    "Crystal Twins 0.434",
    "log10_K_VRH": "DSSL on Matbench log_kvrh 0.068 (other data set)",
    "log10_G_VRH": "DSSL on Matbench log_gvrh 0.084 (other data set)",
}


def cell(r: pd.Series, baseline: bool) -> str:
    text = f"{fmt(r['mae_mean'])} ± {fmt(r['mae_std'], 2)}"
    if not baseline:
        p = "–" if pd.isna(r["p_value"]) else f"{r['p_value']:.3f}"
        text += f" ({r['change_pct']:+.1f} %, p={p})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default="results-bench/mp")
    parser.add_argument("--commit", help="the commit the run used (default: this checkout's HEAD)")
    args = parser.parse_args()
    results = ROOT / args.results
    props = {p.stem: json.loads(p.read_text()) for p in sorted((results / "properties").glob("*.json"))}
    summary = pd.concat([pd.DataFrame(d["summary"]).assign(property=k, unit=d["unit"] or "") for k, d in props.items()])
    methods = ["scratch"] + sorted(set(summary["method"]) - {"scratch"})
    fractions = sorted(summary["fraction"].unique())
    commit = args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True).stdout.strip()  # fmt: skip

    lines = ["# Real-data benchmark (bench/configs/mp.yaml)", ""]
    pre = [json.loads(m.read_text()) for m in sorted((results / "pretrain").glob("*/manifest.json"))]
    guard = next((m for m in pre if m.get("excluded_by")), pre[0])
    enc = guard["params"]["encoder"]
    pre_epochs = max(m["params"]["optim"]["epochs"] for m in pre if m["params"]["optim"])
    finetune = json.loads(next((results / "finetune").glob("*/manifest.json")).read_text())
    ft_epochs = finetune["params"]["finetune"]["optim"]["epochs"]
    lines += [
        f"Pretraining pool: the 36,737-structure Materials Project set minus the downstream test structures found in it, "
        f"{excluded_text(guard)}, leaves {guard.get('n_pool', '?')} structures. "
        f"{enc['name'].upper()} {enc['layers']} x {enc['width']}; pretraining {pre_epochs} epochs, finetuning {ft_epochs} "
        f"epochs, on {guard.get('device', '?')}. "
        f"MAE mean ± std over the 5 folds (1 seed); in brackets the change against scratch on the same folds and the "
        f"two-sided Wilcoxon signed-rank p-value (5 pairs: the smallest possible p is 0.0625). Code at commit {commit}.",
        "",
    ]
    for f in fractions:
        lines += [f"## {100 * f:g} % of the training labels", ""]
        published = f == 1.0  # the published numbers use all training labels
        extra = " | published (all labels)" if published else ""
        lines += ["| property (unit) | " + " | ".join(methods) + extra + " |", "|---" * (len(methods) + 1 + published) + "|"]
        for prop, d in props.items():
            s = summary[(summary["property"] == prop) & (summary["fraction"] == f)].set_index("method")
            unit = d["unit"] + (" (log10)" if d.get("transform") == "log10" else "")
            row = [cell(s.loc[m], m == "scratch") if m in s.index else "–" for m in methods]
            row += [PUBLISHED.get(prop, "–")] if published else []
            lines.append(f"| {prop} ({unit or '–'}) | " + " | ".join(row) + " |")
        mean_change = summary[summary["fraction"] == f].groupby("method")["change_pct"].mean().dropna()
        lines += ["", "Average change against scratch over the properties: "
                  + ", ".join(f"{m} {v:+.1f} %" for m, v in mean_change.sort_values().items()), ""]  # fmt: skip
    lines += ["## Frozen-embedding probes (100 % labels, best model per representation)", ""]
    probe_rows = []
    for d in sorted((results / "probe").glob("*/probes.parquet")):
        prop = d.parent.name.rsplit("-", 1)[0]
        df = pd.read_parquet(d)
        df = df[df["fraction"] == df["fraction"].max()]
        best = df.groupby(["representation", "model"])["mae"].mean().reset_index().sort_values("mae")
        for rep, g in best.groupby("representation", sort=False):
            probe_rows.append({"property": prop, "representation": rep, "model": g.iloc[0]["model"], "mae": g.iloc[0]["mae"]})
    if probe_rows:
        pr = pd.DataFrame(probe_rows)
        reps = list(dict.fromkeys(pr["representation"]))
        lines += ["| representation | " + " | ".join(props) + " |", "|---" * (len(props) + 1) + "|"]
        for rep in reps:
            cells = []
            for prop in props:
                r = pr[(pr["property"] == prop) & (pr["representation"] == rep)]
                cells.append(f"{fmt(r['mae'].iloc[0])} ({r['model'].iloc[0].replace('_', ' ')})" if len(r) else "–")
            lines.append(f"| {rep} | " + " | ".join(cells) + " |")
    lines += ["", "## Pretraining", "", "| method | epochs | pool | wall (s) | graphs/s | device |", "|---|---|---|---|---|---|"]
    for man in pre:
        lines.append(f"| {man['params']['method']} | {man['params']['optim']['epochs'] if man['params']['optim'] else 0} | "
                     f"{man['n_pool']} | {man['wall_s']:.0f} | {man.get('graphs_per_s') or '–'} | {man['device']} |")  # fmt: skip
    (OUT / "mp_benchmark.md").write_text("\n".join(lines) + "\n")
    (OUT / "mp_benchmark.json").write_text(json.dumps(summary.to_dict("records"), indent=1, default=str) + "\n")
    shutil.copy(results / "report.html", OUT / "mp_report.html")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
