"""bench/summarize_mp.py from constructed rows: the issue-20 targets (each one met, missed with the cells that miss it,
or not measurable yet with what is not run; a foundation model never counted as ours), the pool each encoder saw and
the tables of a label fraction (the summary's and the README's)."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from summarize_mp import mean_changes, pool_text, readme_table, table, targets, where_they_ran  # noqa: E402

PROPS = ["jdft2d", "dielectric", "log10_K_VRH", "log10_G_VRH"]


def rows(changes: dict[str, float], helps: set[str], fraction: float = 0.1, scratch_beats: bool = True) -> list[dict]:
    """One property's cell: the dummy (MAE 10), scratch (MAE 8 or, not beating the dummy, 11) and negnn / chgnet with
    the given change against scratch (negnn's verdict "helps" where `helps` names the property)."""
    out = []
    for prop, change in changes.items():
        base = 8.0 if scratch_beats else 11.0
        out += [{**r, "best_dummy": 10.0} for r in [
            {"property": prop, "fraction": fraction, "method": "dummy (median)", "mae_mean": 10.0, "beats_dummy": False},
            {"property": prop, "fraction": fraction, "method": "scratch", "mae_mean": base, "beats_dummy": scratch_beats},
            {"property": prop, "fraction": fraction, "method": "negnn", "mae_mean": base * (1 + change / 100),
             "change_pct": change, "verdict": f"helps: {change:+.1f} %" if prop in helps else "no detectable difference",
             "beats_dummy": True},
            {"property": prop, "fraction": fraction, "method": "chgnet", "mae_mean": 1.0, "change_pct": -90.0,
             "verdict": "helps: -90.0 %", "beats_dummy": True},
        ]]  # fmt: skip
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
    text = lines(rows({"jdft2d": -10.0}, helps=set(), scratch_beats=False),
                 rows({"jdft2d": -10.0, "dielectric": 5.0}, helps=set(), fraction=1.0))  # fmt: skip
    assert "Scratch beats the dummy in every cell: missed (2 of 3 cells; not in jdft2d 10 % (11.0 against 10.0))" in text
    # at all labels the best of ours (negnn 7.2 on jdft2d) is below 43.42; CHGNet's 1.0 is not ours and not counted
    assert "jdft2d with all labels below ALIGNN's 43.42 (a CGCNN-sized encoder): met: best negnn 7.20" in text
    assert "dielectric with all labels below ALIGNN's 0.3449 (a CGCNN-sized encoder): missed: best scratch 8.00" in text


def test_pool_text_from_the_manifest_facts():
    # a guarded pool's pretraining manifest (its params do not say so: the guard is the leakage stage's)
    guarded = {"n_pool": 29621, "n_excluded": 7116, "excluded_by": {"composition_volume": 7116, "id": 3184},
               "only_by": {"composition_volume": 3932, "id": 0}, "params": {"method": "negnn"}}  # fmt: skip
    assert pool_text(guarded) == "29621 structures after the leakage guard removed 7116 (composition + volume 7116, id 3184)"
    assert pool_text({"n_pool": 36737, "n_excluded": 0, "excluded_by": {}, "only_by": {}}) == (
        "36737 structures (no leakage guard)"
    )


def test_table_has_a_row_per_method_and_a_column_per_property():
    def row(prop, method, mae, verdict=None, beats=True, failed=False):
        return {
            "property": prop,
            "method": method,
            "kind": "regression",
            "mae_mean": mae,
            "mae_std": 0.5,
            "rmse_mean": 2 * mae,
            "r2_mean": 0.8,
            "verdict": verdict,
            "beats_dummy": beats,
            "failed": failed,
            "cap_share": 0.0,
        }

    summary = pd.DataFrame([
        row("jdft2d", "dummy (median)", 10.0), row("jdft2d", "scratch", 11.0, beats=False, failed=True),
        row("jdft2d", "negnn", 10.5, "no detectable difference (-9.0 to +1.0 %)", beats=False, failed=True),
        row("log10_K_VRH", "dummy (median)", 0.27), row("log10_K_VRH", "scratch", 0.107),
        row("log10_K_VRH", "negnn", 0.0954, "helps: -11.3 % (-22.3 to -0.2 %)"), row("log10_K_VRH", "dssl", 0.0994, "x"),
    ])  # fmt: skip
    props = {
        "jdft2d": {"unit": "meV/atom", "transform": "log1p"},
        "log10_K_VRH": {"unit": "GPa", "transform": "log10"},
        "dielectric": {"unit": ""},
    }  # (dielectric has not run: no column)
    text = table(summary, props, ["dummy (median)", "scratch", "crystalclr", "dssl", "negnn"])
    assert text[0] == "| method | jdft2d (meV/atom) **failed: no model beats the dummy** | log10_K_VRH (log10 GPa) |"
    assert text[2:] == [
        "| dummy (median) | 10.0 ± 0.50, RMSE 20.0, R² 0.80 | 0.270 ± 0.50, RMSE 0.540, R² 0.80 |",
        "| scratch | 11.0 ± 0.50, RMSE 22.0, R² 0.80 | 0.107 ± 0.50, RMSE 0.214, R² 0.80 |",
        "| dssl | – | 0.0994 ± 0.50, RMSE 0.199, R² 0.80: x |",  # crystalclr ran nowhere: no row; dssl not on jdft2d
        "| negnn | 10.5 ± 0.50, RMSE 21.0, R² 0.80: no detectable difference (-9.0 to +1.0 %) | "
        "0.0954 ± 0.50, RMSE 0.191, R² 0.80: helps: -11.3 % (-22.3 to -0.2 %) |",
        "",
    ]


def test_readme_table_bolds_only_a_detectable_change():
    def row(prop, method, mae, r2=0.8, p=None, change=None, low=None, high=None, failed=False):
        return {"property": prop, "method": method, "kind": "regression", "mae_mean": mae, "r2_mean": r2,
                "p_adjusted": p, "change_pct": change, "ci_low_pct": low, "ci_high_pct": high,
                "failed": failed}  # fmt: skip

    summary = pd.DataFrame([
        row("log10_K_VRH", "dummy (mean)", 0.278), row("log10_K_VRH", "dummy (median)", 0.271),
        row("log10_K_VRH", "scratch", 0.107, r2=0.76),
        row("log10_K_VRH", "negnn", 0.0954, p=0.01, change=-11.3, low=-22.3, high=-0.2),
        row("log10_K_VRH", "dssl", 0.0994, p=0.2, change=-7.0, low=-34.9, high=19.9),
        row("jdft2d", "dummy (mean)", 67.9), row("jdft2d", "dummy (median)", 55.5),
        row("jdft2d", "scratch", 56.6, r2=-0.07, failed=True),
    ])  # fmt: skip
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


def test_mean_change_names_its_properties_only_where_the_methods_ran_on_different_ones():
    def frame(cells: list[dict]) -> pd.DataFrame:
        return pd.DataFrame([r for c in cells for r in c]).assign(kind="regression", failed=False)

    same = "\n".join(mean_changes(frame([rows({"jdft2d": -10.0, "dielectric": -20.0}, helps=set())])))
    assert "chgnet -90.0 %, negnn -15.0 %" in same and "(over" not in same
    # a part that ran negnn alone on dielectric: chgnet's mean is over jdft2d only, and each line says so
    cut = frame(
        [rows({"jdft2d": -10.0}, helps=set()), [r for r in rows({"dielectric": -20.0}, helps=set()) if r["method"] != "chgnet"]]
    )
    text = "\n".join(mean_changes(cut))
    assert "negnn -15.0 % (over dielectric, jdft2d)" in text and "chgnet -90.0 % (over jdft2d)" in text


def test_where_the_runs_ran_is_said_where_they_ran_on_more_than_one_device():
    def runs(*cells: tuple[str, str, str, int]) -> pd.DataFrame:
        return pd.DataFrame([{"property": p, "device": d, "precision": m} for p, d, m, n in cells for _ in range(n)])

    assert where_they_ran(runs(("jdft2d", "cpu", "fp32", 150), ("dielectric", "cpu", "fp32", 150))) == []
    mixed = where_they_ran(runs(("jdft2d", "cpu", "fp32", 150), ("dielectric", "cuda", "bf16-autocast", 135),
                                ("dielectric", "cpu", "fp32", 15)))  # fmt: skip
    assert mixed == ["Where the runs ran: jdft2d 150 on cpu (fp32); dielectric 135 on cuda (bf16-autocast), "
                     "15 on cpu (fp32).", ""]  # fmt: skip
    # runs from before the numeric mode was recorded
    old = runs(("jdft2d", "cpu", "fp32", 2), ("dielectric", "cuda", "bf16-autocast", 1)).drop(columns="precision")
    assert where_they_ran(old) == ["Where the runs ran: jdft2d 2 on cpu (unrecorded); dielectric 1 on cuda (unrecorded).", ""]
