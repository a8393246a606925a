"""Summarise the real-data benchmark (bench/configs/mp.yaml) for the README and bench/results/.

    snakemake --cores all all --configfile bench/configs/mp.yaml     # the run (hours on 2 CPU cores)
    .venv/bin/python bench/summarize_mp.py                          # -> bench/results/mp_benchmark.{md,json}, mp_report.html
    # a benchmark run in parts (bench/parts.py), from the parts saved in git
    .venv/bin/python bench/summarize_mp.py --parts mp-jdft2d-10 mp-jdft2d-25 ... --name mp_parts

The summary is matssl's own (`matssl summarize`: the statistics' families over every run, the per-cell screen, the
pretraining stages, and the report page), read from the config's results folder (only the config's properties) or
from the saved parts; this script adds what only this benchmark has: the targets it set itself (issue 20), the
published numbers comparable with ours, the probes of a results folder, and the README's tables (`--readme`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from collections import Counter
from pathlib import Path
from statistics import median

import pandas as pd

from matssl import (
    ALPHA,
    DUMMIES,
    SCORES,
    Analysis,
    Plan,
    budget_plot,
    collect,
    confirmatory_of,
    fmt,
    load_config,
    markdown_summary,
    markdown_table,
    method_order,
    minus,
    read_config,
    read_json,
    write_summary_report,
)
from parts import git_commit, part_commits

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"

# Published MAEs comparable with ours: the same Matbench task, target and folds, all training labels.
# Matbench v0.1 test MAE per model, and the unit; ALIGNN's are the issue-20 targets at all labels.
PUBLISHED = {
    "jdft2d": ({"CGCNN": 49.24, "ALIGNN": 43.42, "MODNet": 33.19, "dummy": 67.29}, " meV/atom"),
    "dielectric": ({"CGCNN": 0.5988, "ALIGNN": 0.3449, "MODNet": 0.2711, "dummy": 0.8088}, ""),
}
# Numbers that are often quoted beside these tasks but are not like for like.
NOT_COMPARABLE = (
    "Not comparable, for orientation only: DSSL reports 36.29 (jdft2d) and 0.342 (dielectric) and Crystal Twins 46.79 "
    "and 0.434 with their own splits and training budgets; DSSL's 0.068 / 0.084 (log10 K_VRH / G_VRH) are on Matbench's "
    "10,987-structure log_kvrh / log_gvrh, not on our 3,191-structure elasticity set with seeded folds."
)


# The README's names for mp.yaml's methods (a method not named here keeps its config name).
LABELS = {
    "crystalclr": "CrystalCLR (composition similarity)",
    "dssl": "DSSL (stiffness)",
    "fingerprint": "fingerprint targets, wACSF",
    "fingerprint_geometry": "fingerprint targets, geometry only",
    "negnn": "NEGNN",
    "barlow": "Barlow Twins",
    "chgnet": "CHGNet, frozen features",
}


def readme_table(summary: pd.DataFrame, props: list[str], methods: list[str]) -> list[str]:
    """One label fraction's table as the README shows it (regression properties, in the order of `props`, rows in
    the order of `methods`): the dummies in one row (mean / median of the training labels), then per method the test
    MAE mean, its mean R² and, against scratch, the 95 % interval of the change; a change the per-cell screen finds
    (Benjamini-Hochberg q < 0.05) in bold with its mean."""
    s = summary[summary["kind"] == "regression"]
    cells = {prop: s[s["property"] == prop].set_index("method") for prop in props}
    cells = {prop: c for prop, c in cells.items() if len(c)}
    header = [prop + (" (failed: no model beats the dummy)" if c["failed"].any() else "") for prop, c in cells.items()]
    lines = ["| model | " + " | ".join(header) + " |", "|---" * (len(cells) + 1) + "|"]
    dummies = [" / ".join(fmt(c.loc[d, "mae_mean"]) for d in DUMMIES if d in c.index) for c in cells.values()]
    lines.append("| dummy (mean / median of the training labels) | " + " | ".join(dummies) + " |")

    def cell(r: pd.Series) -> str:
        text = minus(f"{fmt(r['mae_mean'])}, R² {r['r2_mean']:.2f}")
        if r.name == "scratch" or pd.isna(r.get("ci_low_pct")):
            return text
        interval = minus(f"{r['ci_low_pct']:+.1f} to {r['ci_high_pct']:+.1f} %")
        if r["p_adjusted"] < ALPHA:  # (as the verdicts: q below 0.05)
            change = minus(f"{r['change_pct']:+.1f} %")
            return f"**{text}; {change} ({interval})**"
        return f"{text}; {interval}"

    for m in methods:
        if m not in DUMMIES and any(m in c.index for c in cells.values()):
            lines.append(
                f"| {LABELS.get(m, m)} | " + " | ".join(cell(c.loc[m]) if m in c.index else "–" for c in cells.values()) + " |"
            )
    return lines + [""]


def targets(summary: pd.DataFrame, foundation: list[str], expected: list[str]) -> list[str]:
    """The benchmark's targets (issue 20), each measured or said to be not measurable yet and why, from the summary
    rows alone (regression properties): scratch beats the dummy in every cell; at 10 % of the labels the best
    pretrained method's mean change against scratch over the `expected` properties is -15 % or better, found by the
    per-cell screen (in its favour) on at least three; at all labels a CGCNN-sized encoder (not a foundation model)
    below ALIGNN on jdft2d and dielectric. A target whose cells are not in the summary is "not measurable yet"."""
    s = summary[summary["kind"] == "regression"]
    if s.empty:
        return []
    lines = ["## Targets (issue 20)", ""]
    scratch = s[s["method"] == "scratch"]
    missed = [
        f"{r['property']} {100 * r['fraction']:g} % ({fmt(r['mae_mean'])} against {fmt(r['best_dummy'])})"
        for _, r in scratch.iterrows()
        if not r["beats_dummy"]
    ]
    lines.append(
        f"- Scratch beats the dummy in every cell: {'met' if not missed else 'missed'} "
        f"({len(scratch) - len(missed)} of {len(scratch)} cells" + (f"; not in {', '.join(missed)}" if missed else "") + ")"
    )
    low = s[(s["fraction"] == 0.1) & s["change_pct"].notna() & ~s["method"].isin(foundation)]
    have = sorted(set(low["property"]))
    if low.empty or set(expected) - set(have):
        lines.append(
            f"- With 10 % of the labels, the best pretrained method beats scratch by 15 % or more on average "
            f"over the {len(expected)} properties: not measurable yet (summarised: {', '.join(have) or 'none'}; not run: "
            f"{', '.join(sorted(set(expected) - set(have)))})"
        )
    else:
        g = low.groupby("method")
        mean = g["change_pct"].mean().sort_values()
        best = mean.index[0]
        wins = int((g.get_group(best)["finding"] > 0).sum())
        ok = mean.iloc[0] <= -15 and wins >= 3
        lines.append(
            f"- With 10 % of the labels, the best pretrained method beats scratch by 15 % or more on average "
            f"over the {len(have)} properties, found by the per-cell screen on at least 3: {'met' if ok else 'missed'}: "
            f"{best} {mean.iloc[0]:+.1f} % on average (descriptive), found in its favour "
            f"on {wins} of {len(have)}"
        )
    full = s[(s["fraction"] == 1.0) & ~s["method"].isin([*DUMMIES, *foundation])]
    for prop, (maes, _) in PUBLISHED.items():
        bar = maes["ALIGNN"]
        cells = full[full["property"] == prop]
        if cells.empty:
            lines.append(f"- {prop} with all labels below ALIGNN's {bar:g}: not measurable yet (not run)")
            continue
        b = cells.loc[cells["mae_mean"].idxmin()]
        scratch = cells[cells["method"] == "scratch"]["mae_mean"]  # (met by scratch too: not pretraining's doing)
        lines.append(
            f"- {prop} with all labels below ALIGNN's {bar:g} (a CGCNN-sized encoder): "
            f"{'met' if b['mae_mean'] < bar else 'missed'}: best {b['method']} {fmt(b['mae_mean'])}"
            + (f"; scratch {fmt(scratch.iloc[0])}" if len(scratch) and b["method"] != "scratch" else "")
        )
    return lines + [""]


def scale_targets(a: Analysis, fraction: float = 0.1, paper: float = -15.0) -> list[str]:
    """The targets of the question at scale (issue 43), from the analysis' families where the runs hold them: per
    pretrained method the change against scratch at `fraction` of the labels on average across the properties (its
    random-effects mean, in its family's words), whether it reaches the fingerprint paper's `paper` % (its interval below it: reached; the
    interval containing it: not excluded), whether it beats the control of its budget (across properties), and the
    change per doubling of the budget (across properties). Nothing where the runs have none of these."""
    if not len(a.across):
        return []
    at = a.across["fraction"] == fraction
    pooled = {f for fr in a.primary["fractions"] for f in fr} if len(a.primary) else set()
    if not at.any() and pooled == {fraction}:  # (the comparisons' only fraction: its means are those across properties)
        at = a.across["fraction"].isna()
    regression = a.across[(a.across["kind"] == "regression") & at]
    if not len(regression) or (a.control.empty and a.budget.empty):
        return []
    lines = [f"## Targets at scale (issue 43), {100 * fraction:g} % of the labels, on average across the properties", ""]
    for _, r in regression.iterrows():
        paper_word = (
            "reaches it" if r["ci_high_pct"] <= paper else "does not exclude it" if r["ci_low_pct"] <= paper else "short of it"
        )
        lines.append(minus(f"- {r['method']} against scratch: {r['verdict']}; the fingerprint paper's {paper:g} %: {paper_word}"))
    for frame, what in ((a.control, "against the control of its budget"), (a.budget, "per doubling of the budget")):
        mean = frame[frame["property"].isna() & (frame["kind"] == "regression")] if len(frame) else frame
        for _, r in mean.iterrows():
            lines.append(f"- {r['method']} {what}: {minus(r['verdict'])}")
    return lines + [""]


def where_parts_ran(parts_dir: Path, names: list[str]) -> list[str]:
    """Per saved part: its commit and host, where its finetuning runs ran (device and numeric mode) and for how long,
    from each run's own wall time (summed: runs that ran side by side count each; a run saved in two parts counts in
    both). The pretraining stages' are in the Pretraining table."""
    rows = []
    for name in names:
        meta = read_json(parts_dir / name / "part.json")
        runs = [r for f in sorted((parts_dir / name / "properties").glob("*.json")) for r in read_json(f)["runs"]]
        modes = Counter(f"{r.get('device') or 'cpu'} ({r.get('precision') or 'unrecorded'})" for r in runs)
        wall = [r["wall_s"] for r in runs if r.get("wall_s") is not None]
        rows.append(
            [
                name,
                meta.get("commit", "–"),
                meta.get("host", "–"),
                len(runs),
                ", ".join(f"{n} on {mode}" for mode, n in modes.items()),
                fmt(sum(wall) / 3600) if wall else "–",
                fmt(median(wall)) if wall else "–",
            ]
        )
    header = ["part", "commit", "host", "runs", "where", "run time, summed (h)", "median run (s)"]
    return ["## Where and how long each part ran", "", *markdown_table(header, rows), ""]


def probes(plan: Plan, props: dict, kinds: dict[str, str]) -> list[str]:
    """The frozen-embedding probes of a results folder (the largest label fraction): a table per property."""
    lines = ["## Frozen-embedding probes (largest label fraction; every model, none chosen on test data)", ""]
    for prop, stage in plan.probes.items():
        if prop not in props:
            continue
        if not Path(stage.done).exists():
            lines += [f"{prop}: no probe stage of this code's plan here (run the workflow with it)", ""]
            continue
        df = pd.read_parquet(Path(stage.dir) / "probes.parquet")
        df = df[df["fraction"] == df["fraction"].max()]
        t = df.groupby(["representation", "model"], sort=False)[SCORES[kinds[prop]].primary].mean().unstack("model")
        lines += [
            f"### {prop}",
            "",
            *markdown_table(["representation", *t.columns], [[rep, *map(fmt, r)] for rep, r in t.iterrows()]),
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="bench/configs/mp.yaml", help="the benchmark's config")
    parser.add_argument("--commit", help="the commit the run used (default: this checkout's HEAD; with --parts, each part's)")
    parser.add_argument("--name", default="mp", help="writes bench/results/NAME_benchmark.{md,json} and NAME_report.html")
    parser.add_argument(
        "--root",
        default=".",
        help="the folder the run was made in, where its config's relative paths start (default: the current folder)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        help="summarise these saved parts (bench/parts/NAME, see bench/parts.py) together instead of a results folder",
    )
    parser.add_argument(
        "--properties",
        nargs="+",
        help="summarise only these properties of the config (a part of a run whose other properties have not finished)",
    )
    parser.add_argument(
        "--readme", action="store_true", help="print the README's tables (one per label fraction) instead of the summary"
    )
    parser.add_argument("--out", default=str(OUT), help=argparse.SUPPRESS)  # (tests write elsewhere)
    parser.add_argument("--parts-dir", default=str(ROOT / "bench" / "parts"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    config, out, parts_dir = (Path(a).resolve() for a in (args.config, args.out, args.parts_dir))
    raw = read_config(config)  # (validating the config needs its data, which a parts summary lacks)
    os.chdir(args.root)  # the config's results folder and data paths are relative to the run's folder
    if args.parts:  # runs saved in git, maybe by several machines
        plan, folders = None, [parts_dir / name for name in args.parts]
        commit = ", ".join(f"{c} ({name})" for name, c in part_commits(args.parts, parts_dir).items())
        runs = collect(folders, args.properties)
        runs.sources = {f"bench/parts/{Path(f).name}": n for f, n in runs.sources.items()}  # (not this machine's path)
    else:  # the run's results folder: the config's per-property targets
        plan = Plan(load_config(config))
        folders, commit = [Path(plan.cfg.results)], args.commit or git_commit()
        runs = collect(folders, args.properties or list(plan.cfg.properties))
    a = runs.analyse(confirmatory_of(raw))
    summary = a.cells.assign(unit=[runs.props[p]["unit"] or "" for p in a.cells["property"]])
    kinds = {p: d.get("kind") or "regression" for p, d in runs.props.items()}

    lines = markdown_summary(runs, a, raw)
    lines[0] = f"# Real-data benchmark ({args.config})"
    lines[2] += f" Code at commit {commit}."
    for prop in runs.props:  # the gain against the pretraining budget (a config with pretrain.budgets), as a picture
        figure = budget_plot(summary[summary["property"] == prop], prop, SCORES[kinds[prop]])
        if figure is not None:
            name = f"{args.name}_budget_{prop}.png"
            (out / name).write_bytes(base64.b64decode(figure.split(",", 1)[1]))
            lines += [f"![{prop}: the change against scratch by pretraining budget]({name})", ""]
    foundation = runs.foundation
    lines += targets(summary, foundation, list(raw["properties"]))
    lines += scale_targets(a)
    if set(PUBLISHED) & set(runs.props):
        lines += ["## Published numbers (all training labels)", ""]
        lines += [
            f"- {prop}: Matbench v0.1: {', '.join(f'{m} {v:g}' for m, v in PUBLISHED[prop][0].items())}{PUBLISHED[prop][1]}"
            for prop in runs.props
            if prop in PUBLISHED
        ]
        lines += ["", NOT_COMPARABLE, ""]
    lines += probes(plan, runs.props, kinds) if plan else ["Probes are not saved in parts: run the workflow with them.", ""]
    lines += where_parts_ran(parts_dir, args.parts) if args.parts else []
    (out / f"{args.name}_benchmark.md").write_text("\n".join(lines) + "\n")
    (out / f"{args.name}_benchmark.json").write_text(json.dumps(summary.to_dict("records"), indent=1, default=str) + "\n")
    write_summary_report(runs, a, raw, out / f"{args.name}_report.html")
    if args.readme:  # (the config's order of methods, then any other the runs have)
        named, methods = list(raw["pretrain"]["methods"]), method_order(summary["method"])
        order = [m for m in named if m in methods] + [m for m in methods if m not in named]
        fractions = sorted(summary["fraction"].unique())
        lines = [
            line
            for f in fractions
            for line in [
                f"With {100 * f:g} % of the labels:",
                "",
                *readme_table(summary[summary["fraction"] == f], list(raw["properties"]), order),
            ]
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
