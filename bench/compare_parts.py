"""A question of protocol, measured run by run: the runs of some parts (finetuned with twice the step cap, say) paired
with the runs of other parts of the same method, pretraining seed and budget, fold, label fraction and finetuning seed,
started from the same encoder; per encoder and label fraction, the mean change of the primary metric with its 95 %
interval from the two-level model of the comparisons with scratch (`matssl.stats`), Holm over every comparison. The finetuning
settings that differ are named.

    .venv/bin/python bench/compare_parts.py --property log10_K_VRH --parts mp-stepcap-kvrh \\
        --against mp-kvrh-100a mp-kvrh-100b mp-kvrh-100c --name mp_stepcap   # -> bench/results/mp_stepcap_comparison.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from matssl import PROPERTY_FIELDS, RUN_ID, SCORES, collect, compare_all, fmt, summarize_runs, unit_label
from parts import PARTS, part_commits

OUT = Path(__file__).resolve().parent / "results"
MODEL = ["method", "pretrain_seed", "pretrain_epochs"]  # what one encoder is; the rest of RUN_ID is where it ran


def settings_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The settings that differ, as 'optim.max_steps: 3000 → 6000'."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += settings_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a} → {b}")
    return out


def where(d: dict) -> str:
    """The devices and numeric modes a side's runs ran in: 'cpu fp32', 'cuda bf16 and cpu fp32'."""
    return " and ".join(sorted({f"{r.get('device', 'cpu')} {r.get('precision', 'unrecorded')}" for r in d["runs"]}))


def compare(new: dict, old: dict) -> pd.DataFrame:
    """Per encoder (method, pretraining seed and budget) and label fraction, `summarize_runs`' comparison of the new
    protocol's runs against the old's, on the runs both have (each pair from one encoder); Holm over all of them."""
    sc = SCORES[new["kind"]]
    a, b = pd.DataFrame(new["runs"]), pd.DataFrame(old["runs"])
    both = a[[*RUN_ID, "pretrain"]].merge(b[[*RUN_ID, "pretrain"]], on=list(RUN_ID), suffixes=("", "_old"))
    other = both[both["pretrain"].fillna("") != both["pretrain_old"].fillna("")]  # (a foundation model's runs: none)
    if len(other):
        raise SystemExit(
            f"{len(other)} paired runs started from other pretraining stages (other pretraining settings, "
            f"pool or code), e.g. {other['pretrain'].iloc[0]} against {other['pretrain_old'].iloc[0]}: "
            "the change would not be the finetuning settings' alone"
        )
    both = both[list(RUN_ID)].drop_duplicates()
    rows = []
    for key, pairs in both.groupby(MODEL + ["fraction"], sort=True):
        runs = pd.concat([old_new.merge(pairs).assign(protocol=p) for p, old_new in (("old", b), ("new", a))])
        s = summarize_runs(runs.assign(method=runs["protocol"]), baseline="old", kind=new["kind"]).set_index("method")
        row = s.loc["new"].to_dict() | dict(zip(MODEL + ["fraction"], key, strict=True)) | {"n_pairs": len(pairs)}
        row |= {f"old_{k}": s.loc["old", k] for k in (f"{sc.primary}_mean", "cap_share", "best_step_median")}
        rows.append(row)
    words = ("better with the new settings", "worse with the new settings")
    return compare_all(pd.DataFrame(rows), words=words, adjust="holm", family="protocol comparisons")


def markdown(prop: str, new: dict, old: dict, out: pd.DataFrame, names: tuple[list[str], list[str]], commits: dict) -> str:
    sc = SCORES[new["kind"]]
    differ = settings_diff(old["finetune"], new["finetune"]) + (
        [] if old["finetune_code"] == new["finetune_code"] else ["the finetuning code"]
    )
    m, unit = sc.primary, f", {unit_label(new)}" if unit_label(new) else ""
    lines = [
        f"# {prop}: {', '.join(names[0])} against {', '.join(names[1])}",
        "",
        f"Settings that differ (old → new): {'; '.join(differ) or 'none'}.",
        f"Parts and their commits: {', '.join(f'{c} ({n})' for n, c in commits.items())}; where the runs ran: "
        f"old {where(old)}, new {where(new)}.",
        "",
        f"Test {sc.label} (mean over the paired runs{unit}), runs at the step cap, median best step; the change of "
        f"the new settings' runs against the old ones' on the same folds and seeds (the mean log ratio of the paired "
        f"runs' {sc.label}, as a %, with the two-level model's 95 % interval), the verdict Holm-corrected over the {int(out['p_adjusted'].notna().sum())} "
        "comparisons tested.",
        "",
        f"| model | labels | pairs | old: {sc.label}, at the cap, best step | new: {sc.label}, at the cap, best step | change |",
        "|---|---|---|---|---|---|",
    ]
    seeds = out.groupby("method")["pretrain_seed"].nunique()
    for r in out.to_dict("records"):
        name = r["method"] + (f", pretraining seed {r['pretrain_seed']}" if seeds[r["method"]] > 1 else "")
        cap_old, cap_new = round(r["old_cap_share"] * r["n_pairs"]), round(r["cap_share"] * r["n_pairs"])
        lines.append(
            f"| {name} | {100 * r['fraction']:g} % | {r['n_pairs']} | {fmt(r[f'old_{m}_mean'])}, {cap_old}, "
            f"{r['old_best_step_median']:,.0f} | {fmt(r[f'{m}_mean'])}, {cap_new}, {r['best_step_median']:,.0f} | "
            f"{r['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--property", required=True)
    parser.add_argument("--parts", nargs="+", required=True, help="the new settings' parts")
    parser.add_argument("--against", nargs="+", required=True, help="the old settings' parts")
    parser.add_argument("--name", required=True, help="bench/results/NAME_comparison.{md,json}")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--parts-dir", default=str(PARTS), help=argparse.SUPPRESS)  # (tests write elsewhere)
    args = parser.parse_args(argv)
    parts = Path(args.parts_dir)
    sides = [collect([parts / n for n in names], [args.property]) for names in (args.parts, args.against)]
    new, old = (s.props[args.property] for s in sides)
    differ = [k for k in (*PROPERTY_FIELDS, "splits") if new.get(k) != old.get(k)]
    if differ:
        raise SystemExit(
            f"{args.property}: the two sides differ in {differ} (the splits stage: its folds, the split "
            "code or library versions): their runs do not pair"
        )
    out = compare(new, old)
    if out.empty:
        raise SystemExit(f"{args.property}: no run of {args.parts} has a partner in {args.against}")
    commits = part_commits(args.against, parts) | part_commits(args.parts, parts)
    text = markdown(args.property, new, old, out, (args.parts, args.against), commits)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.name}_comparison.md").write_text(text)
    (Path(args.out) / f"{args.name}_comparison.json").write_text(out.to_json(orient="records", indent=1) + "\n")
    print(text, end="")


if __name__ == "__main__":
    main()
