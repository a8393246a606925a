"""bench/summarize_mp.py from constructed rows: the issue-20 targets (each one met, missed with the cells that miss it,
or not measurable yet with what is not run; a foundation model never counted as ours) and the README's table of a
label fraction."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from summarize_mp import readme_table, scale_targets, targets, where_parts_ran  # noqa: E402

PROPS = ["jdft2d", "dielectric", "log10_K_VRH", "log10_G_VRH"]


def rows(changes: dict[str, float], helps: set[str], fraction: float = 0.1, scratch_beats: bool = True) -> list[dict]:
    """One property's cell: the dummy (MAE 10), scratch (MAE 8 or, not beating the dummy, 11) and negnn / chgnet with
    the given change against scratch (negnn's verdict "helps" where `helps` names the property)."""
    out = []
    for prop, change in changes.items():
        base = 8.0 if scratch_beats else 11.0
        out += [
            {**r, "best_dummy": 10.0}
            for r in [
                {"property": prop, "fraction": fraction, "method": "dummy (median)", "mae_mean": 10.0, "beats_dummy": False},
                {"property": prop, "fraction": fraction, "method": "scratch", "mae_mean": base, "beats_dummy": scratch_beats},
                {
                    "property": prop,
                    "fraction": fraction,
                    "method": "negnn",
                    "mae_mean": base * (1 + change / 100),
                    "change_pct": change,
                    "finding": int(prop in helps),
                    "beats_dummy": True,
                },
                {
                    "property": prop,
                    "fraction": fraction,
                    "method": "chgnet",
                    "mae_mean": 1.0,
                    "change_pct": -90.0,
                    "finding": 1,
                    "beats_dummy": True,
                },
            ]
        ]
    return out


def lines(*cells: list[dict]) -> str:
    summary = pd.DataFrame([r for c in cells for r in c]).assign(kind="regression")
    return "\n".join(targets(summary, foundation=["chgnet"], expected=PROPS))


def test_ten_percent_target_met_and_missed():
    met = lines(rows(dict.fromkeys(PROPS, -20.0), helps=set(PROPS[:3])))
    assert "on at least 3: met: negnn -20.0 % on average" in met and "in its favour on 3 of 4" in met
    assert "Scratch beats the dummy in every cell: met (4 of 4 cells)" in met
    # the same mean with its interval excluding 0 on two properties only; CHGNet's -90 % is never the best "SSL" method
    two = lines(rows(dict.fromkeys(PROPS, -20.0), helps=set(PROPS[:2])))
    assert "on at least 3: missed: negnn -20.0 %" in two and "on 2 of 4" in two
    small = lines(rows({"jdft2d": -40.0, "dielectric": -5.0, "log10_K_VRH": -5.0, "log10_G_VRH": -5.0}, helps=set(PROPS)))
    assert "missed: negnn -13.8 %" in small


def test_not_measurable_until_every_property_ran():
    text = lines(rows({"jdft2d": -30.0}, helps={"jdft2d"}))
    assert "not measurable yet (summarised: jdft2d; not run: dielectric, log10_G_VRH, log10_K_VRH)" in text
    assert "jdft2d with all labels below ALIGNN's 43.42: not measurable yet (not run)" in text


def test_scratch_against_the_dummy_and_the_published_bar():
    text = lines(
        rows({"jdft2d": -10.0}, helps=set(), scratch_beats=False),
        rows({"jdft2d": -10.0, "dielectric": 5.0}, helps=set(), fraction=1.0),
    )
    assert "Scratch beats the dummy in every cell: missed (2 of 3 cells; not in jdft2d 10 % (11.0 against 10.0))" in text
    # at all labels the best of ours (negnn 7.2 on jdft2d) is below 43.42; CHGNet's 1.0 is not ours and not counted
    assert "jdft2d with all labels below ALIGNN's 43.42 (a CGCNN-sized encoder): met: best negnn 7.20" in text
    assert "dielectric with all labels below ALIGNN's 0.3449 (a CGCNN-sized encoder): missed: best scratch 8.00" in text


def test_readme_table_bolds_only_a_detectable_change():
    def row(prop, method, mae, r2=0.8, p=None, change=None, low=None, high=None, failed=False):
        return {
            "property": prop,
            "method": method,
            "kind": "regression",
            "mae_mean": mae,
            "r2_mean": r2,
            "p_adjusted": p,
            "change_pct": change,
            "ci_low_pct": low,
            "ci_high_pct": high,
            "failed": failed,
        }

    summary = pd.DataFrame(
        [
            row("log10_K_VRH", "dummy (mean)", 0.278),
            row("log10_K_VRH", "dummy (median)", 0.271),
            row("log10_K_VRH", "scratch", 0.107, r2=0.76),
            row("log10_K_VRH", "negnn", 0.0954, p=0.01, change=-11.3, low=-22.3, high=-0.2),
            row("log10_K_VRH", "dssl", 0.0994, p=0.2, change=-7.0, low=-34.9, high=19.9),
            row("jdft2d", "dummy (mean)", 67.9),
            row("jdft2d", "dummy (median)", 55.5),
            row("jdft2d", "scratch", 56.6, r2=-0.07, failed=True),
        ]
    )
    text = readme_table(summary, ["jdft2d", "dielectric", "log10_K_VRH"], ["scratch", "crystalclr", "negnn", "dssl"])
    assert text == [
        "| model | jdft2d (failed: no model beats the dummy) | log10_K_VRH |",  # dielectric has not run: no column
        "|---|---|---|",
        "| dummy (mean / median of the training labels) | 67.9 / 55.5 | 0.278 / 0.271 |",
        "| scratch | 56.6, R² −0.07 | 0.107, R² 0.76 |",
        "| NEGNN | – | **0.0954, R² 0.80; −11.3 % (−22.3 to −0.2 %)** |",  # crystalclr ran nowhere: no row
        "| DSSL (stiffness) | – | 0.0994, R² 0.80; −34.9 to +19.9 % |",
        "",
    ]


def test_the_targets_at_scale_come_from_the_families():
    """Issue 43's targets: a method's mean change at 10 % against scratch and the paper's -15 % (reached: the interval
    below it), against the control of its budget, per doubling of the budget; none without a control or a sweep."""
    from matssl import analyse

    from .test_stats import swept_runs

    effects = {"fp-e1": [-0.10], "fp-e16": [-0.20], "ctl-e1": [0.0], "ctl-e16": [0.0]}
    data = {p: (swept_runs(effects, 1 + 0.1 * k, seed=k), "regression") for k, p in enumerate("abcd")}
    lines = scale_targets(analyse(data, controls=["ctl-e1", "ctl-e16"]))
    text = "\n".join(lines)
    assert lines[0].startswith("## Targets at scale (issue 43), 10 % of the labels")
    assert "- fp-e16 against scratch: on average across properties, helps: −20." in text
    assert [line.split(": ")[0] for line in lines if line.endswith("reaches it")] == ["- fp-e16 against scratch"]
    assert "- fp-e1 against the control of its budget: on average across properties, beats the control: −10." in text
    assert "- fp per doubling of the budget: on average across properties, improves with budget: −" in text
    plain = {p: (swept_runs({"fp": [-0.1]}, seed=k).assign(pretrain_epochs=np.nan), "regression") for k, p in enumerate("ab")}
    assert scale_targets(analyse(plain)) == []


def test_each_part_says_where_and_how_long_it_ran(tmp_path):
    import json

    part = tmp_path / "p1"
    (part / "properties").mkdir(parents=True)
    (part / "part.json").write_text(json.dumps({"commit": "abc1234", "host": "gpu-node"}))
    runs = [{"device": "cuda", "precision": "bf16", "wall_s": w} for w in (10.0, 30.0)] + [{"device": "cpu", "wall_s": 3580.0}]
    (part / "properties" / "n.json").write_text(json.dumps({"runs": runs}))
    text = "\n".join(where_parts_ran(tmp_path, ["p1"]))
    assert "| p1 | abc1234 | gpu-node | 3 | 2 on cuda (bf16), 1 on cpu (unrecorded) | 1.01 | 30.0 |" in text
