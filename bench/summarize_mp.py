"""Summarise the real-data benchmark (bench/configs/mp.yaml) for the README and bench/results/.

    snakemake --cores all all --configfile bench/configs/mp.yaml     # the run (hours on 2 CPU cores)
    .venv/bin/python bench/summarize_mp.py                          # -> bench/results/mp_benchmark.{md,json}, mp_report.html

Asks the config's plan for exactly the stages of the run (never globs the results folder, which may hold
stages of older configs): the per-property targets, the probe stages and the pretraining manifests. Writes
a Markdown summary with the verdicts of the report's statistics, the comparable published numbers apart
from the others, and copies the report. A benchmark run in parts (bench/parts.py) is summarised from the parts
saved in git: `--parts NAME ...` (every part's runs in one Holm family; no probes, no report).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import yaml

from matssl.config import FinetuneConfig, load_config
from matssl.report import CAP_WARNING, budget_plot, excluded_text, fmt, fmt_p, method_order
from matssl.stages import Plan
from matssl.stats import ALPHA, DUMMIES, SCORES, Analysis, analyse
from parts import PARTS, from_parts, from_root, git_commit

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


def cell(r: pd.Series) -> str:
    m = SCORES[r["kind"]].primary
    text = f"{fmt(r[f'{m}_mean'])} ± {fmt(r[f'{m}_std'], 2)}"
    others = SCORES[r["kind"]].others  # (a regression's RMSE and R²)
    text += f", RMSE {fmt(r['rmse_mean'])}" if "rmse" in others and pd.notna(r.get("rmse_mean")) else ""
    text += f", R² {r['r2_mean']:.2f}" if "r2" in others and pd.notna(r.get("r2_mean")) else ""
    if r["method"] in DUMMIES or r["method"] == "scratch":
        return text
    flags = "" if r["beats_dummy"] or r["failed"] else "; does not beat the dummy"  # (a failed cell says so already)
    flags += f"; {100 * r['cap_share']:.0f} % hit the step cap" if r["cap_share"] > CAP_WARNING else ""
    return f"{text}: {r['verdict'] or '–'}{flags}"


def table(summary: pd.DataFrame, props: dict[str, dict], methods: list[str]) -> list[str]:
    """One label fraction's table: a row per method, a column per property (each column one cell of the benchmark:
    its dummies, scratch and the verdicts against scratch), "–" where a method has not run on a property."""
    cells = {prop: summary[summary["property"] == prop].set_index("method", drop=False) for prop in props}
    cells = {prop: s for prop, s in cells.items() if len(s)}
    header = []
    for prop, s in cells.items():
        unit = ("log10 " if props[prop].get("transform") == "log10" else "") + (props[prop]["unit"] or "")
        header.append(f"{prop} ({unit or '–'})" + (" **failed: no model beats the dummy**" if s["failed"].any() else ""))
    lines = ["| method | " + " | ".join(header) + " |", "|---" * (len(cells) + 1) + "|"]
    for m in methods:
        if any(m in s.index for s in cells.values()):
            lines.append(f"| {m} | " + " | ".join(cell(s.loc[m]) if m in s.index else "–" for s in cells.values()) + " |")
    return lines + [""]


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


def minus(text: str) -> str:
    return text.replace("-", "−")  # (the README's minus sign)


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
            lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cell(c.loc[m]) if m in c.index else "–"
                                                                    for c in cells.values()) + " |")  # fmt: skip
    return lines + [""]


def family_table(df: pd.DataFrame, keys: list[str], title: str) -> list[str]:
    """One family's rows as a Markdown table: its keys, the verdict (with the 95 % interval), p and adjusted p."""
    if df.empty:
        return []
    fam = df.iloc[0]
    lines = [f"### {title}: {fam['family']} ({fam['adjust']} over {int(fam['n_family'])})", "",
             "| " + " | ".join(keys) + " | verdict | p | p adjusted |", "|---" * (len(keys) + 3) + "|"]  # fmt: skip
    for _, r in df.iterrows():
        key = [f"{100 * r[k]:g} %" if k == "fraction" else ", ".join(r[k]) if k == "properties" else str(r[k]) for k in keys]
        note = (
            f" (failed cells pooled: {', '.join(f'{100 * f:g} %' for f in r['failed_fractions'])})"
            if len(r.get("failed_fractions") or [])
            else ""
        )
        lines.append(f"| {' | '.join(key)} | {minus(r['verdict'])}{note} | {fmt_p(r['p_value'])} | {fmt_p(r['p_adjusted'])} |")
    return lines + [""]


def families(a: Analysis) -> list[str]:
    """The answer, family by family (`matssl.stats.analyse`): across properties, per method x property pooled over the
    label fractions, the foundation models against scratch and the pretrained methods against them."""
    lines = ["## The answer, family by family", "",
             "Every interval is a plain 95 % interval; each family has its own correction (the families: "
             + "; ".join(f"{f['family']}, {f['adjust']} over {f['n']}" for f in a.families()) + "). A change is the "
             "ratio of the test MAE to scratch's on the same fold and seed, averaged on a log scale; its uncertainty has "
             "two levels (folds with the Nadeau-Bengio correction, seeds without it).", ""]  # fmt: skip
    if len(a.across):
        tau = a.across.assign(tau=[f"{float(SCORES[k].shown(t)):.1f}{SCORES[k].unit}" for t, k in zip(a.across["tau"], a.across["kind"], strict=True)],
                              i2=[f"{100 * i:.0f} %" for i in a.across["i2"]])  # fmt: skip
        whole = tau["fraction"].isna()
        lines += family_table(tau[whole], ["method", "k", "tau", "i2"], "On average across the properties (random effects)")
        lines += family_table(tau[~whole].sort_values(["fraction", "method"]), ["method", "fraction", "tau"],
                              "On average across the properties, per label fraction")  # fmt: skip
    for _, g in a.primary.groupby("family", sort=False) if len(a.primary) else []:
        lines += family_table(
            g.sort_values(["property", "method"]),
            ["property", "method"],
            "Per method and property, pooled over the label fractions",
        )
    if len(a.foundation):
        lines += family_table(a.foundation, ["property", "method"], "Foundation models against scratch")
    for _, g in a.versus.groupby("family", sort=False) if len(a.versus) else []:
        lines += family_table(
            g.sort_values(["property", "method"]), ["property", "method"], "Pretrained methods against a foundation model"
        )
    return lines


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
    lines.append(f"- Scratch beats the dummy in every cell: {'met' if not missed else 'missed'} "
                 f"({len(scratch) - len(missed)} of {len(scratch)} cells" + (f"; not in {', '.join(missed)}" if missed else "")
                 + ")")  # fmt: skip
    low = s[(s["fraction"] == 0.1) & s["change_pct"].notna() & ~s["method"].isin(foundation)]
    have = sorted(set(low["property"]))
    if low.empty or set(expected) - set(have):
        lines.append(f"- With 10 % of the labels, the best pretrained method beats scratch by 15 % or more on average "
                     f"over the {len(expected)} properties: not measurable yet (summarised: {', '.join(have) or 'none'}; not run: "
                     f"{', '.join(sorted(set(expected) - set(have)))})")  # fmt: skip
    else:
        g = low.groupby("method")
        mean = g["change_pct"].mean().sort_values()
        best = mean.index[0]
        wins = int(g.get_group(best)["verdict"].str.startswith("helps").sum())
        ok = mean.iloc[0] <= -15 and wins >= 3
        lines.append(f"- With 10 % of the labels, the best pretrained method beats scratch by 15 % or more on average "
                     f"over the {len(have)} properties, found by the per-cell screen on at least 3: {'met' if ok else 'missed'}: "
                     f"{best} {mean.iloc[0]:+.1f} % on average (descriptive), found in its favour "
                     f"on {wins} of {len(have)}")  # fmt: skip
    full = s[(s["fraction"] == 1.0) & ~s["method"].isin([*DUMMIES, *foundation])]
    for prop, (maes, _) in PUBLISHED.items():
        bar = maes["ALIGNN"]
        cells = full[full["property"] == prop]
        if cells.empty:
            lines.append(f"- {prop} with all labels below ALIGNN's {bar:g}: not measurable yet (not run)")
            continue
        b = cells.loc[cells["mae_mean"].idxmin()]
        scratch = cells[cells["method"] == "scratch"]["mae_mean"]  # (met by scratch too: not pretraining's doing)
        lines.append(f"- {prop} with all labels below ALIGNN's {bar:g} (a CGCNN-sized encoder): "
                     f"{'met' if b['mae_mean'] < bar else 'missed'}: best {b['method']} {fmt(b['mae_mean'])}"
                     + (f"; scratch {fmt(scratch.iloc[0])}" if len(scratch) and b["method"] != "scratch" else ""))  # fmt: skip
    return lines + [""]


def pool_text(manifest: dict) -> str:
    """What a pretraining stage's pool was, from its manifest: its size, and what the leakage guard removed (the
    guard's counts per criterion; empty where the config had no guard)."""
    n = manifest.get("n_pool", "?")
    if manifest.get("excluded_by"):
        return f"{n} structures after the leakage guard removed {excluded_text(manifest)}"
    return f"{n} structures (no leakage guard)"


def expected_properties(config: Path) -> list[str]:
    """The config's property names, read as YAML (validating the config needs its data, which a parts summary lacks)."""
    return list(yaml.safe_load(config.read_text())["properties"])


def config_methods(config: Path) -> list[str]:
    """The config's pretraining methods in its order (read as YAML, as `expected_properties`)."""
    return list(yaml.safe_load(config.read_text())["pretrain"]["methods"])


def where_they_ran(runs: pd.DataFrame) -> list[str]:
    """Per property, how many runs ran on which device in which numeric mode, where not all on one (a GPU trains in
    bf16 autocast, a CPU in fp32: numbers from both in one cell are said to be)."""
    precision = runs["precision"].fillna("unrecorded") if "precision" in runs else "unrecorded"
    runs = runs.assign(mode=runs["device"].astype(str) + " (" + precision + ")")
    if runs["mode"].nunique() < 2:
        return []
    per = [f"{prop} " + ", ".join(f"{n} on {mode}" for mode, n in g["mode"].value_counts().items())
           for prop, g in runs.groupby("property", sort=False)]  # fmt: skip
    return ["Where the runs ran: " + "; ".join(per) + ".", ""]


def mean_changes(at_fraction: pd.DataFrame) -> list[str]:
    """Per kind of property, each method's mean change against scratch over the properties whose cell did not fail
    (descriptive: the mean of a change in MAE and one in ROC-AUC would mean nothing, so one line per kind). Where the
    methods ran on different properties (a part that cut the methods), each mean names the properties it is over."""
    lines = []
    for kind, ok in at_fraction[~at_fraction["failed"]].groupby("kind"):
        sc = SCORES[kind]
        by_method = ok.dropna(subset=["change_pct"]).groupby("method")
        mean_change = by_method["change_pct"].mean().sort_values(ascending=sc.lower_is_better)
        if mean_change.empty:
            continue
        over = by_method["property"].agg(lambda p: ", ".join(sorted(p)))
        lines += [f"Mean change in {sc.label} against scratch over the properties whose cell did not fail "
                  f"({'lower' if sc.lower_is_better else 'higher'} is better; descriptive, no interval): "
                  + ", ".join(f"{m} {v:+.1f}{sc.unit}" + (f" (over {over[m]})" if over.nunique() > 1 else "")
                              for m, v in mean_change.items()), ""]  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="bench/configs/mp.yaml", help="the benchmark's config (its plan names every stage)")
    parser.add_argument("--commit", help="the commit the run used (default: this checkout's HEAD; with --parts, each part's)")
    parser.add_argument("--name", default="mp", help="writes bench/results/NAME_benchmark.{md,json} and NAME_report.html")
    parser.add_argument("--root", default=".", help="the folder the run was made in, where its config's relative paths "
                        "start (default: the current folder)")  # fmt: skip
    parser.add_argument("--parts", nargs="+", help="summarise these saved parts (bench/parts/NAME, see bench/parts.py) "
                        "together instead of a results folder")  # fmt: skip
    parser.add_argument(
        "--no-report", action="store_true", help="do not copy the run's report.html (e.g. one written by older code)"
    )
    parser.add_argument("--properties", nargs="+", help="summarise only these properties of the config (a part of a run "
                        "whose other properties have not finished)")  # fmt: skip
    parser.add_argument("--readme", action="store_true", help="print the README's tables (one per label fraction) "
                        "instead of the summary")  # fmt: skip
    parser.add_argument("--out", default=str(OUT), help=argparse.SUPPRESS)  # (tests write elsewhere)
    parser.add_argument("--parts-dir", default=str(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    config, out, parts_dir = (Path(a).resolve() for a in (args.config, args.out, args.parts_dir))
    os.chdir(args.root)  # the config's results folder and data paths are relative to the run's folder
    if args.parts:  # runs saved in git, maybe by several machines (the config is not read: it needs the data)
        plan, found = None, from_parts(args.parts, args.properties, parts_dir)
        commit = ", ".join(f"{c} ({name})" for name, c in found.commits.items())
    else:  # the run's results folder: the per-property targets named by the plan, summarised again with this code
        plan = Plan(load_config(config))
        found = from_root(Path("."), plan, args.properties or list(plan.cfg.properties))
        commit = args.commit or git_commit()
    props = found.props
    kinds = {k: d.get("kind", "regression") for k, d in props.items()}
    runs = pd.concat([pd.DataFrame(d["runs"]).assign(property=k) for k, d in props.items()])
    # a method with no pretraining stage of ours (e.g. CHGNet): a foundation model
    foundation = [m for m, has in runs.groupby("method")["pretrain"].agg(lambda v: v.notna().all()).items() if not has]
    named = yaml.safe_load(config.read_text()).get("statistics", {}).get("confirmatory")
    a = analyse({k: (pd.DataFrame(d["runs"]), kinds[k]) for k, d in props.items()}, foundation=foundation,
                confirmatory=None if named is None else [(c["method"], c.get("property")) for c in named])  # fmt: skip
    summary = a.cells.assign(unit=[props[p]["unit"] or "" for p in a.cells["property"]])
    methods = method_order(summary["method"])
    fractions = sorted(summary["fraction"].unique())

    lines = [f"# Real-data benchmark ({args.config})", ""]
    devices = ", ".join(sorted(set(runs["device"])))
    pre = [found.pretrain[k] for k in sorted(set(runs["pretrain"].dropna()))]
    trained = [m for m in pre if m["params"]["optim"]]  # (scratch does not pretrain)
    seeds, pseeds = sorted(set(runs["seed"])), sorted(set(runs.get("pretrain_seed", pd.Series([0]))))  # what ran
    # what ran, from the runs and their pretraining stages (a part may have run with another config than this one)
    default = plan.cfg.encoder.model_dump() if plan else {"name": "?", "layers": "?", "width": "?"}
    enc = next((m["params"]["encoder"] for m in pre if "encoder" in m["params"]), default)
    o = FinetuneConfig.model_validate(next(iter(props.values()))["finetune"]).optim
    pre_epochs = sorted({m["params"]["optim"]["epochs"] for m in trained})
    pools = sorted({pool_text(m) for m in trained})
    pretraining = (f"Pretraining pool: {'; '.join(pools)}. "
                   f"{enc['name'].upper()} {enc['layers']} x {enc['width']}; pretraining {', '.join(map(str, pre_epochs))} "
                   f"epochs (seeds {pseeds})" if trained else
                   f"No pretraining in this part (scratch only). {enc['name'].upper()} {enc['layers']} x {enc['width']}")  # fmt: skip
    lines += [
        f"{pretraining}; finetuning with learning rates {o.lrs} chosen on validation MAE (log loss for a "
        f"classification), at most "
        f"{o.max_steps} steps, patience {o.patience} (seeds {seeds}; {len(runs)} runs), on {devices}. "
        f"Code at commit {commit}.",
        "",
    ]
    lines += families(a)
    lines += [
        "## Per cell (exploratory screen)",
        "",
        "Test MAE (ROC-AUC for a classification) mean ± std over runs, mean RMSE and R² (a regression), then the "
        "per-cell screen against scratch on the same folds and seeds: the change with its 95 % interval, "
        f"Benjamini-Hochberg over the {int(summary.loc[summary['family'] == 'per cell', 'p_adjusted'].notna().sum())} "
        "cells of the pretrained methods (the foundation models' cells a family of their own).",
        "",
    ]
    for f in fractions:
        lines += [f"### {100 * f:g} % of the training labels", ""]
        lines += table(summary[summary["fraction"] == f], props, methods)
        at_f = summary[(summary["fraction"] == f) & ~summary["method"].isin(DUMMIES)]
        lines += [f"Runs that hit the {o.max_steps}-step cap: " + ", ".join(
            f"{m} {100 * g['cap_share'].mean():.0f} %" for m, g in at_f.groupby("method", sort=False)), ""]  # fmt: skip
        # (runs of code from before predictions were held at the training range do not say)
        recorded = runs[(runs["fraction"] == f) & runs["n_test_clipped"].notna()] if "n_test_clipped" in runs else []
        if len(recorded):
            held = recorded.groupby("method", sort=False)[["n_test_clipped", "n_test"]].sum()
            lines += ["Test predictions held at the training targets' range (over properties): " + ", ".join(
                f"{m} {int(r['n_test_clipped'])} of {int(r['n_test'])}" for m, r in held.iterrows()), ""]  # fmt: skip
        lines += where_they_ran(runs[runs["fraction"] == f])
        lines += mean_changes(summary[summary["fraction"] == f])
    # the gain against the pretraining budget (a config with pretrain.budgets), as the report draws it
    for prop in props:
        figure = budget_plot(summary[summary["property"] == prop], prop, SCORES[kinds[prop]])
        if figure is not None:
            name = f"{args.name}_budget_{prop}.png"
            (out / name).write_bytes(base64.b64decode(figure.split(",", 1)[1]))
            lines += [f"![{prop}: the change against scratch by pretraining budget]({name})", ""]
    lines += targets(summary, foundation, expected_properties(config))
    if set(PUBLISHED) & set(props):
        lines += ["## Published numbers (all training labels)", ""]
        lines += [f"- {prop}: Matbench v0.1: {', '.join(f'{m} {v:g}' for m, v in PUBLISHED[prop][0].items())}{PUBLISHED[prop][1]}"
                  for prop in props if prop in PUBLISHED]  # fmt: skip
        lines += ["", NOT_COMPARABLE, ""]
    probes = {} if plan is None else {p: st for p, st in plan.probes.items() if p in props}
    if probes or args.parts:
        lines += ["## Frozen-embedding probes (largest label fraction; every model, none chosen on test data)", ""]
    if args.parts:
        lines += ["Probes are not saved in parts: run the workflow with them.", ""]
    for prop, stage in probes.items():
        if not Path(stage.done).exists():
            lines += [f"{prop}: no probe stage of this code's plan in {args.root} (run the workflow with it)", ""]
            continue
        df = pd.read_parquet(Path(stage.dir) / "probes.parquet")
        df = df[df["fraction"] == df["fraction"].max()]
        probes = df.groupby(["representation", "model"], sort=False)[SCORES[kinds[prop]].primary].mean().unstack("model")
        lines += [
            f"### {prop}",
            "",
            "| representation | " + " | ".join(probes.columns) + " |",
            "|---" * (len(probes.columns) + 1) + "|",
        ]
        lines += [f"| {rep} | " + " | ".join(fmt(v) for v in r) + " |" for rep, r in probes.iterrows()] + [""]
    lines += [
        "## Pretraining",
        "",
        "| method | seed | epochs | pool | wall (s) | graphs/s | device |",
        "|---|---|---|---|---|---|---|",
    ]
    for man in pre:
        lines.append(f"| {man['params']['method']} | {man['params']['seed']} | "
                     f"{man['params']['optim']['epochs'] if man['params']['optim'] else 0} | {man.get('n_pool') or '–'} | {man['wall_s']:.0f} | "
                     f"{man.get('graphs_per_s') or '–'} | {man['device']} |")  # fmt: skip
    (out / f"{args.name}_benchmark.md").write_text("\n".join(lines) + "\n")
    (out / f"{args.name}_benchmark.json").write_text(json.dumps(summary.to_dict("records"), indent=1, default=str) + "\n")
    if plan is not None and not args.no_report:  # (parts have no report: it is made by a run over every stage)
        shutil.copy(plan.report_target, out / f"{args.name}_report.html")
    if args.readme:  # (the config's order of methods, then any other the parts ran)
        named, columns = config_methods(config), expected_properties(config)
        order = [m for m in named if m in methods] + [m for m in methods if m not in named]
        lines = [line for f in fractions for line in [f"With {100 * f:g} % of the labels:", "",
                                                      *readme_table(summary[summary["fraction"] == f], columns, order)]]  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
