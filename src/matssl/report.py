"""`results/report.html`: one self-contained page (plots embedded as PNG, no script, no network)."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, PackageLoader  # noqa: E402

from matssl.evaluate import EXTENSIVE_RHO, TAIL_SDS  # noqa: E402
from matssl.foundation import MODELS  # noqa: E402
from matssl.io import atomic_path, read_json, spec_digest  # noqa: E402
from matssl.objectives import OBJECTIVES  # noqa: E402
from matssl.pretrain import COLLAPSED_SPREAD, STEEP_SHARE, convergence  # noqa: E402
from matssl.stages import OUTPUTS  # noqa: E402
from matssl.stats import ACROSS, BUDGET, CONTROL, DUMMIES, MEAN, SCORES, Analysis, Named, Scores, analyse  # noqa: E402
from matssl.summarize import Runs, collect, confirmatory_of, pretrained_from, stage_key  # noqa: E402
from matssl.table import read_table  # noqa: E402
from matssl.target import Target  # noqa: E402

KOKER_2022 = "Koker, Quigley, Spaeth, Frey, Li (2022). Graph contrastive learning for materials. NeurIPS 2022 AI4Mat workshop."
NEGNN_PAPER = "Kong, Zhao, ..., Chang. Self-supervised learning of atomic representations (NEGNN)."
METHOD_INFO = {
    "foundation": (
        "Foundation model",
        "A pretrained universal interatomic potential whose weights ship in its package (CHGNet: the sum over atoms of its atom "
        "features after the last interaction block, 64 values); the same head and finetuning protocol as every other "
        "method train on it, with the model frozen (train: head) or every weight of it finetuned (train: all). Trained on "
        "MPtrj, which holds Materials Project structures: the leakage guard cannot apply to it.",
        "Deng, Zhong, Jun, Riebesell, Han, Bartel, Ceder (2023). CHGNet as a pretrained universal neural network "
        "potential for charge-informed atomistic modelling. Nature Machine Intelligence 5, 1031.",
    ),
    "pretrained": (
        "Imported encoder",
        "An encoder.pt trained elsewhere (another run, a GPU cluster, a colleague), checked against this config's encoder "
        "and finetuned like the rest. What it was trained on is not known here: the leakage guard cannot apply to it.",
        "",
    ),
    "scratch": ("No pretraining", "The encoder starts from random weights: the baseline every method is compared with.", ""),
    "crystalclr": (
        "CrystalCLR",
        "Contrastive (SimCLR NT-Xent) between two augmented views of each crystal: site perturbation, anisotropic "
        "strain, same-column element replacement; optional composition-similarity loss.",
        KOKER_2022,
    ),
    "dssl": (
        "DSSL",
        "Masked-element prediction plus a cosine contrastive loss between two coordinate-perturbed views; optionally "
        "regresses the masked atoms' atomic stiffness or valence class (physics-guided micro-property).",
        "Fu, Hu et al. Physics guided dual self-supervised learning for structure-based materials property prediction.",
    ),
    "fingerprint": (
        "Fingerprint targets",
        "Regresses every atom's local-environment fingerprint (standardised) from its node embedding with L1. The "
        "paper's element-aware descriptors: weighted ACSF (wacsf), SOAP over element groups (soap_groups), embedded atom "
        "density (ead); the geometry-only ablations (acsf_geometry, soap_geometry) see no chemistry.",
        "Jia, Govil, Ramprasad, Fung (2025). Structure-based pretraining with local fingerprints.",
    ),
    "negnn": (
        "NEGNN",
        "Masks 15% of the atoms and the edges touching them; predicts each masked atom's group and period and each hidden "
        "edge's distance bin.",
        NEGNN_PAPER,
    ),
    "negnn_contrastive": (
        "NEGNN, contrastive",
        "NEGNN's contrastive variant (GraphCL): NT-Xent between two views of each crystal, each a random supercell "
        "(1x1x2, 1x2x2, 2x2x2 or none) with 20% of its atoms masked and 20% of its edges' lengths hidden.",
        NEGNN_PAPER,
    ),
    "fingerprint_control": (
        "Control pretraining",
        "The fingerprint objective on targets shuffled across the pool's atoms: the same encoder, head, loss and budget, "
        "but no structural information in the target. A method that helps no more than the control helps as any "
        "pretrained start does, not through what its objective teaches.",
        "",
    ),
    "crystalclr_cs": (
        "CrystalCLR + CS",
        "CrystalCLR with the composition-similarity loss: views of crystals that share an element are also positives.",
        KOKER_2022,
    ),
    "barlow": (
        "Crystal Twins",
        "Barlow Twins loss between two views with 10% of atoms masked and 10% of edges dropped.",
        "Magar, Wang, Barati Farimani (2022). Crystal Twins: self-supervised learning for crystalline material property "
        "prediction. npj Comput. Mater. 8, 231.",
    ),
}


def fmt(x: float, digits: int = 3) -> str:
    """Numbers with `digits` significant figures, no scientific notation for everyday magnitudes."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if -4 <= mag < 6:
        return f"{x:.{max(digits - 1 - mag, 0)}f}"
    return f"{x:.{digits - 1}e}"


def fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def extensive_warning(prop: dict[str, Any], summed: list[str]) -> str:
    """A warning when a property learnt as it is correlates strongly with the atoms per cell (an extensive one?);
    `summed`: the methods whose model sums over atoms (a foundation model's own readout), which see the cell size."""
    rho = prop.get("atoms_spearman")
    if Target.of(prop).per_atom != "none" or rho is None or not abs(rho) > EXTENSIVE_RHO:
        return ""
    text = (
        f"The property correlates with the number of atoms per cell (Spearman ρ = {rho:.2f}): an extensive property "
        "(per cell or per formula unit) cannot be seen by the mean over atoms that the graph encoders pool with "
        "(scratch and every pretrained method)."
    )
    if summed:
        text += (
            f" {', '.join(summed)} sum over atoms, so their features carry the cell size: on this property they "
            "are not compared on equal terms."
        )
    return text + " Set per_atom: cell or formula_unit for this property."


SMALL_VALIDATION = 30  # validation structures below which a split cannot tell a model that learnt a little from a constant


def failure_notes(runs: pd.DataFrame, summary: pd.DataFrame, prop: dict[str, Any], sc: Scores, unit: str) -> list[str]:
    """Per label fraction where a trained model does not beat the better dummy: which (all of them: a `failed` cell),
    what their runs had (labelled structures, how they chose their weights) and the likely causes, from the runs and
    the property's labels."""
    notes, m = [], f"{sc.primary}_mean"
    best = (lambda d: d.loc[d[m].idxmin()]) if sc.lower_is_better else (lambda d: d.loc[d[m].idxmax()])
    u = f" {unit}" if unit else ""
    for f, cell in summary.groupby("fraction"):
        trained, dummies = cell[~cell["method"].isin(DUMMIES)], cell[cell["method"].isin(DUMMIES)]
        losing = trained[~trained["beats_dummy"].astype(bool)].dropna(subset=[m])
        if losing.empty or dummies.empty:
            continue
        dummy, r = best(dummies), runs[(runs["fraction"] == f) & runs["method"].isin(losing["method"])]
        bar = f"the better dummy ({dummy['method']}: {fmt(dummy[m])}{u}"
        if len(losing) == len(trained):
            top = best(trained)
            who = f"no trained model beats {bar}; the best trained, {top['method']}: {fmt(top[m])}{u})"
        else:
            by_name = losing.set_index("method")[m]
            names = [f"{k} ({fmt(by_name[k])})" for k in method_order(losing["method"])]
            who = f"{', '.join(names)} {'does' if len(names) == 1 else 'do'} not beat {bar})"
        cv = r.get("selection", pd.Series("split", index=r.index)).fillna("split").str.contains("cross-validation")
        n = int(r["n_train"].where(cv, r["n_train"] + r["n_val"]).median())
        text = f"At {100 * f:g}% of the labels {who}. Each of these runs had {n} labelled structures"
        if cv.all():
            text += f" and chose its weights by {r['selection'].iloc[0]} over all of them."
        else:  # (some runs by cross-validation where a fold's subset is a structure above `below`)
            n_val = int(r.loc[~cv, "n_val"].median())
            text += f" and chose its weights on a validation split of {n_val} of them"
            text += (
                ", too few to tell a model that learnt a little from the constant (below finetune.small_data.below "
                "labelled structures a run selects by cross-validation)."
                if n_val < SMALL_VALIDATION
                else "."
            )
        tail = prop.get("tail_share")
        if sc.lower_is_better and tail is not None and tail > 0.01:
            text += (
                f" {100 * tail:.1f}% of the property's labels lie more than {TAIL_SDS:g} robust standard deviations "
                "from their median (0.3% for a normal distribution): on so heavy a tail the median is a strong "
                "constant, and the error of a few tail structures decides the mean."
            )
        notes.append(text + " These cells are still shown and compared.")
    return notes


def unit_label(prop: dict[str, Any]) -> str:
    """The unit of a property's values, from its summary's record."""
    return Target.of(prop).unit(prop.get("unit"))


def label_efficiency_plot(summary: pd.DataFrame, name: str, unit: str, sc: Scores) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    m = sc.primary
    for method, g in summary.groupby("method"):
        g = g.sort_values("fraction")
        if method in DUMMIES:
            ax.plot(100 * g["fraction"], g[f"{m}_mean"], color="grey", linestyle=":", label=method)
            continue
        ax.errorbar(
            100 * g["fraction"],
            g[f"{m}_mean"],
            yerr=g[f"{m}_std"],
            marker="o",
            capsize=3,
            label=method,
            linestyle="--" if method == "scratch" else "-",
        )
    ax.set_xscale("log")
    ticks = sorted(100 * summary["fraction"].unique())
    ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labels used (% of training fold)")
    ax.set_ylabel(f"test {sc.label} ({unit})" if unit and sc.lower_is_better else f"test {sc.label}")
    ax.set_title(f"{name}: label efficiency ({'lower' if sc.lower_is_better else 'higher'} is better)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def parity_plot(runs: pd.DataFrame, name: str, unit: str, methods: list[str]) -> str:
    frac = runs["fraction"].max()
    seed = runs["seed"].min()
    fig, axes = plt.subplots(1, len(methods), figsize=(3.4 * len(methods), 3.4), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        sel = runs[(runs["method"] == method) & (runs["fraction"] == frac) & (runs["seed"] == seed)]
        pred = pd.concat([read_table(Path(d) / "predictions.parquet") for d in sel["dir"]]) if len(sel) else None
        if pred is not None:
            ax.scatter(pred["y_true"], pred["y_pred"], s=4, alpha=0.5)
            lo, hi = min(pred["y_true"].min(), pred["y_pred"].min()), max(pred["y_true"].max(), pred["y_pred"].max())
            ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
            mae = (pred["y_true"] - pred["y_pred"]).abs().mean()
            ax.set_title(f"{method} (MAE {fmt(mae)})", fontsize=9)
        ax.set_xlabel(f"true ({unit})" if unit else "true")
        ax.set_ylabel("predicted")
    fig.suptitle(f"{name}: test predictions, {100 * frac:g}% labels, all folds, seed {seed}", fontsize=10)
    return png(fig)


def roc_plot(runs: pd.DataFrame, name: str, classes: list[str], methods: list[str]) -> str:
    """ROC curves of the test predictions (all folds, the largest label fraction, the first seed): for two classes
    the second class's, for more each class against the rest."""
    from sklearn.metrics import roc_curve

    frac, seed = runs["fraction"].max(), runs["seed"].min()
    shown = [1] if len(classes) == 2 else list(range(len(classes)))
    fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods), 3.4), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        sel = runs[(runs["method"] == method) & (runs["fraction"] == frac) & (runs["seed"] == seed)]
        if len(sel):
            pred = pd.concat([read_table(Path(d) / "predictions.parquet") for d in sel["dir"]])
            proba = np.stack(pred["proba"].to_numpy())
            for k in shown:
                truth = (pred["y_true"] == classes[k]).to_numpy()
                if 0 < truth.sum() < len(truth):
                    fpr, tpr, _ = roc_curve(truth, proba[:, k])
                    ax.plot(fpr, tpr, lw=1, label=classes[k], color=plt.cm.tab10(k % 10))
            ax.legend(fontsize=6, title="positive class" if len(shown) == 1 else "class vs rest", title_fontsize=6)
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, linestyle=":")
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
    fig.suptitle(f"{name}: ROC curves of the test predictions, {100 * frac:g}% labels, all folds, seed {seed}", fontsize=10)
    return png(fig)


COLLAPSE = {"embedding_spread": "spread", "embedding_rank": "effective rank / width"}


def loss_plot(histories: dict[str, list[dict[str, float]]]) -> str | None:
    """Per pretraining run: its loss terms (top) and the collapse signal of its graph embeddings (bottom)."""
    trained = {m: h for m, h in histories.items() if h}
    if not trained:
        return None
    fig, axes = plt.subplots(2, len(trained), figsize=(3.6 * len(trained), 5.4), squeeze=False, sharex="col")
    for k, (method, hist) in enumerate(trained.items()):
        h = pd.DataFrame(hist)
        ax = axes[0][k]
        for col in [c for c in h.columns if c not in ("epoch", "step", "graphs_per_s", "val", *COLLAPSE)]:
            ax.plot(h["epoch"], h[col], marker=".", label=col, lw=2 if col == "loss" else 1)
        ax.set_title(method, fontsize=10)
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        ax = axes[1][k]
        for col in [c for c in COLLAPSE if c in h]:
            ax.plot(h["epoch"], h[col], marker=".", label=COLLAPSE[col])
        ax.set_ylim(0, 1.1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("collapse signals (0: collapsed)", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return png(fig)


def budget_plot(summary: pd.DataFrame, name: str, sc: Scores) -> str | None:
    """The change in the test metric (MAE, ROC-AUC) against scratch by pretraining budget, per method and label fraction,
    with its 95 % interval (as in the report's tables; the verdicts are their families'): tells 'this objective helps
    least' from 'this objective was trained least'."""
    swept = summary[summary["method"] != summary.get("base_method", summary["method"])].dropna(subset=["change_pct"])
    if swept.empty or swept["pretrain_epochs"].nunique() < 2:
        return None
    fractions = sorted(swept["fraction"].unique())
    fig, axes = plt.subplots(1, len(fractions), figsize=(4.0 * len(fractions), 3.4), squeeze=False, sharey=True)
    for ax, f in zip(axes[0], fractions, strict=True):
        for method, g in swept[swept["fraction"] == f].groupby("base_method"):
            g = g.sort_values("pretrain_epochs")
            err = [g["change_pct"] - g["ci_low_pct"], g["ci_high_pct"] - g["change_pct"]]
            ax.errorbar(g["pretrain_epochs"], g["change_pct"], yerr=err, marker="o", capsize=3, label=method)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("pretraining epochs")
        ax.set_title(f"{100 * f:g}% labels", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test {sc.label} vs scratch ({sc.unit.strip()})")
    axes[0][-1].legend(fontsize=7)
    better = "lower" if sc.lower_is_better else "higher"
    fig.suptitle(f"{name}: change against pretraining budget ({better} is better; 95 % intervals)", fontsize=10)
    return png(fig)


PROBE_MODELS = {
    "ridge": "ridge",
    "random_forest": "random forest",
    "kernel_ridge": "kernel ridge",
    "logistic": "logistic regression",
}


def probe_table(probes: pd.DataFrame, sc: Scores) -> dict[str, Any]:
    """The primary metric (MAE, ROC-AUC) mean ± std over folds x seeds per representation (rows) and model x label
    fraction (columns). No 'best' is marked: that would be a choice made on test data."""
    stats = probes.groupby(["representation", "model", "fraction"], sort=False)[sc.primary].agg(["mean", "std", "count"])
    columns = [(m, f) for m in PROBE_MODELS if m in set(probes["model"]) for f in sorted(probes["fraction"].unique())]
    rows = []
    for rep, family in probes[["representation", "family"]].drop_duplicates().itertuples(index=False):
        cells = []
        for c in columns:
            r = stats.loc[(rep, *c)]
            spread = f" ± {fmt(r['std'], 2)}" if r["count"] > 1 else ""
            cells.append(f"{fmt(r['mean'])}{spread}")
        rows.append({"name": rep, "family": family, "cells": cells})
    header = [{"model": PROBE_MODELS[m], "fraction": f"{100 * f:g}%"} for m, f in columns]
    models = list(dict.fromkeys(PROBE_MODELS[m] for m, _ in columns))
    return {"header": header, "rows": rows, "models": models}


def embedding_map(points: pd.DataFrame, name: str, unit: str, classes: list[str] | None = None) -> str:
    """PCA of each method's frozen graph embeddings, coloured by crystal system when known, else by the label."""
    methods = list(dict.fromkeys(points["representation"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(3.0 * len(methods), 3.2), squeeze=False)
    systems = points["crystal_system"].dropna() if "crystal_system" in points else pd.Series([], dtype=str)
    own_classes = len(systems) == 0 and bool(classes)
    if own_classes:  # a classification's own classes (the labels are their positions)
        points = points.assign(crystal_system=[classes[int(k)] for k in points["label"]])
        systems = points["crystal_system"]
    by_system = len(systems) > 0
    for ax, method in zip(axes[0], methods, strict=True):
        g = points[points["representation"] == method]
        if by_system:
            for k, system in enumerate(sorted(systems.unique())):
                sel = g[g["crystal_system"] == system]
                ax.scatter(sel["x"], sel["y"], s=3, alpha=0.6, color=plt.cm.tab10(k % 10), label=system)
        else:
            lo, hi = np.nanpercentile(points["label"], [2, 98])  # a few outliers must not wash out the colours
            sc = ax.scatter(g["x"], g["y"], s=3, alpha=0.6, c=g["label"], cmap="viridis", vmin=lo, vmax=hi)
        ax.set_title(method, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("PC 1", fontsize=8)
        ax.set_ylabel("PC 2", fontsize=8)
    if by_system:
        axes[0][-1].legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.8, label=f"{name} ({unit})" if unit else name)
    colour = ("its classes" if own_classes else "crystal system") if by_system else name
    clip = "" if by_system else " (2nd-98th percentile)"
    fig.suptitle(f"{name}: frozen embeddings, first two principal components, coloured by {colour}{clip}", fontsize=10)
    return png(fig)


def excluded_text(manifest: dict[str, Any]) -> str:
    """'412 (composition + volume 402, id 380; structure 395, 6 found by it alone)': the guard's total and what each
    criterion found; '–' where nothing pretrained on the pool."""
    if manifest.get("imported_from"):
        return "unknown: trained elsewhere, the leakage guard cannot apply"
    if manifest.get("n_pool") is None:
        return "–"
    n, by, alone = manifest.get("n_excluded", 0), manifest.get("excluded_by") or {}, manifest.get("only_by") or {}
    parts = ", ".join(f"{k.replace('_', ' + ')} {v}" for k, v in by.items() if k != "structure")
    if "structure" in by:
        parts += (
            f"; structure {by['structure']}, {alone.get('structure', 0)} found by it alone"
            if parts
            else f"structure {by['structure']}"
        )
    return f"{n} ({parts})" if by else str(n)


def stage_rows(stage_dirs: list[str]) -> list[dict[str, Any]]:
    rows = []
    for d in stage_dirs:
        m = read_json(Path(d) / "manifest.json")
        params = {k: v for k, v in m["params"].items() if k not in ("source",)}
        rows.append(
            {
                "kind": m["kind"],
                "key": m["key"],
                "wall": fmt(m["wall_s"], 3),
                "device": m.get("device", "cpu"),
                "memory": f"{m['peak_memory_mb']:.0f}",
                "host": m["host"],
                "code": m["code"],
                "slurm": m.get("slurm_job_id") or "",
                "params": ", ".join(f"{k}={v}" for k, v in params.items() if not isinstance(v, dict))[:300],
            }
        )
    order = list(OUTPUTS)  # the stage kinds in pipeline order
    return sorted(rows, key=lambda r: (order.index(r["kind"]), r["key"]))


def rejection_rows(stage_dirs: list[str]) -> list[dict[str, Any]]:
    rows = []
    for d in stage_dirs:
        f = Path(d) / "rejected.parquet"
        if f.exists():
            rej = read_table(f)
            for reason, n in rej["reason"].str.replace(r"\(.*\)|:.*", "", regex=True).str.strip().value_counts().items():
                rows.append({"stage": Path(d).name, "reason": reason, "count": int(n)})
    return rows


def unlabelled_rows(stage_dirs: list[str]) -> list[dict[str, Any]]:
    """Per property: test rows whose structure was rejected, and rows without a usable label (kept for
    pretraining, left out of the folds)."""
    rows = []
    for d in stage_dirs:
        if Path(d).parent.name == "splits":
            dropped = read_json(Path(d) / "folds.json")["dropped"]
            rows.append(
                {
                    "property": Path(d).name.rsplit("-", 1)[0],
                    "rejected": dropped["rejected_at_ingest"],
                    "unlabelled": dropped["no_label_or_invalid_for_transform"],
                }
            )
    return rows


CAP_WARNING = 0.5  # a cell where more than this share of runs hit the step cap is flagged as possibly under-trained


def method_order(methods) -> list[str]:
    trained = sorted(m for m in set(methods) if m not in DUMMIES and m != "scratch")
    return [m for m in DUMMIES if m in set(methods)] + ["scratch"] + trained


# Methods whose training data this workflow does not control: the leakage guard cannot apply to them.
UNGUARDED = {
    "foundation": "trained on MPtrj (Materials Project structures): test structures may have been seen; the leakage guard "
    "cannot apply",
    "pretrained": "imported encoder: what it was trained on is unknown here; the leakage guard cannot apply",
}


OTHER_LABELS = {"rmse": "RMSE", "r2": "R²", "accuracy": "accuracy", "log_loss": "log loss"}


def table_cell(r: pd.Series, caveat: str | None = None, sc: Scores = SCORES["regression"]) -> dict[str, Any]:
    """One method at one label fraction: its scores, how its runs ended, and its comparison with scratch."""
    m = sc.primary
    spread = f" ± {fmt(r[f'{m}_std'], 2)}" if r["n_runs"] > 1 else ""
    dummy = r["method"] in DUMMIES
    flags = [caveat] if caveat else []
    if not dummy and not r["beats_dummy"]:
        flags.append("does not beat the dummy")
    if not dummy and r.get("cap_share", 0) > CAP_WARNING:
        flags.append(f"{100 * r['cap_share']:.0f} % of runs hit the step cap")
    tested = math.isfinite(r.get("ci_low_pct", math.nan))  # a comparison with scratch over two or more folds
    also = [
        f"{OTHER_LABELS[o]} {r[f'{o}_change_pct']:+.1f}{sc.unit} ({r[f'{o}_ci_low_pct']:+.1f} to {r[f'{o}_ci_high_pct']:+.1f}, 95 %)"
        for o in sc.paired
        if tested and math.isfinite(r.get(f"{o}_ci_low_pct", math.nan))
    ]
    return {
        "value": f"{fmt(r[f'{m}_mean'])}{spread}",
        "n": int(r["n_runs"]),
        "others": ", ".join(f"{OTHER_LABELS[o]} {fmt(r[f'{o}_mean'], 2 if o == 'r2' else 3)}" for o in sc.others),
        "change": f"q = {fmt_p(r['p_adjusted'])}" if tested and math.isfinite(r.get("p_adjusted", math.nan)) else "",
        "also": "; ".join(also),
        **verdict_style(r),
        "flags": flags,
        "lrs": "" if dummy else f"lr {r['lrs']}; median best step {r['best_step_median']:.0f}",
    }


def verdict_style(r: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """A judged comparison's verdict and whether it found the method better or worse than its baseline (the colours)."""
    found = r.get("finding", 0)
    found = 0 if found is None or (isinstance(found, float) and math.isnan(found)) else int(found)
    return {"verdict": r.get("verdict") or "", "helps": found > 0, "hurts": found < 0}


def family_rows(df: pd.DataFrame, columns: list[str], caveats: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One family's rows for the report: the named `columns`, the verdict, the adjusted p and notes (fractions that
    failed, a method's caveat)."""
    rows = []
    for _, r in df.iterrows():
        note = []
        failed = r.get("failed_fractions")
        if isinstance(failed, list) and failed:  # (a mean across properties has none: NaN)
            note.append("failed cells pooled (no model beats the dummy): " + ", ".join(f"{100 * f:g}%" for f in failed))
        if caveats and r.get("method") in caveats:
            note.append(caveats[r["method"]])
        extra = {c: (f"{100 * r[c]:g}%" if c == "fraction" else int(r[c]) if c == "k" else r[c]) for c in columns}
        for c in {"properties", "budgets"} & set(columns):
            extra[c] = ", ".join(map(str, r[c]))
        if "tau" in columns:  # the spread of the true changes between properties, as a % factor
            extra["tau"] = f"{float(SCORES[r['kind']].shown(r['tau'])):.1f}"
            extra["i2"] = f"{100 * r['i2']:.0f} %"
        rows.append(
            {
                **extra,
                **verdict_style(r),
                "p": fmt_p(r["p_value"]),
                "p_adjusted": fmt_p(r["p_adjusted"]),
                "named": bool(r.get("named", False)),
                "note": "; ".join(note),
            }
        )
    return rows


def unmade_text(unmade: list[Named]) -> str:
    return (
        "Named beforehand (statistics.confirmatory) but made by no comparison here (no runs of the method or of what it "
        "is compared with, or a question the report does not ask), so not in the confirmatory family: "
        + ", ".join(map(str, unmade))
        + "."
    )


def answer(a: Analysis, caveats: dict[str, str]) -> dict[str, Any]:
    """The report's answer, family by family (`stats.analyse`)."""
    across = a.across if len(a.across) else pd.DataFrame(columns=["fraction"])
    order = {m: k for k, m in enumerate(method_order(a.cells["method"]))}

    def ordered(df: pd.DataFrame, *by: str) -> pd.DataFrame:
        return df.sort_values([*by], key=lambda c: c.map(order) if c.name == "method" else c, kind="stable") if len(df) else df

    primary = ordered(a.primary, "property", "method")
    named = [df[df["named"]] for df in (a.across, a.primary, a.control) if len(df) and "named" in df]
    named = pd.concat(named, ignore_index=True) if named else pd.DataFrame()
    if len(named):
        named["on"] = named["property"].where(named["property"].notna(), "average across the properties")
        named["against"] = named["baseline"]
    families = a.families()
    n = {f["family"]: f["n"] for f in families}
    return {
        "families": families,
        "named": a.named,
        "confirmatory": family_rows(named, ["method", "against", "on"], caveats),
        "unmade": unmade_text(a.unmade) if a.unmade else "",
        # each question's family size, the comparisons named beforehand not counted (they are in 'confirmatory')
        "n": {
            "family": n,
            "across": n.get(ACROSS, 0),
            "control": n.get(CONTROL, 0),
            "control_across": n.get(CONTROL + MEAN, 0),
            "budget": n.get(BUDGET, 0),
            "budget_across": n.get(BUDGET + MEAN, 0),
        },
        "across": family_rows(ordered(across[across["fraction"].isna()], "method"), ["method", "k", "properties", "tau"]),
        "across_fraction": family_rows(
            ordered(across[across["fraction"].notna()], "fraction", "method"), ["method", "fraction", "k", "tau"]
        ),
        "primary": {name: family_rows(g, ["property", "method"], caveats) for name, g in primary.groupby("family", sort=False)}
        if len(primary)
        else {},
        "foundation": family_rows(ordered(a.foundation, "property"), ["property", "method"], caveats),
        "versus": {
            model: family_rows(ordered(g, "property", "method"), ["property", "method"])
            for model, g in a.versus.groupby("baseline", sort=False)
        }
        if len(a.versus)
        else {},
        "control": with_mean(a.control, ordered, ["method", "baseline", "k", "tau"], ["property", "method", "baseline"])
        if len(a.control)
        else {},
        "budget": with_mean(a.budget, ordered, ["method", "budgets", "k", "tau"], ["property", "method", "budgets"])
        if len(a.budget)
        else {},
    }


def with_mean(
    df: pd.DataFrame, ordered: Callable[..., pd.DataFrame], across: list[str], per: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """A family judged per property and its mean across the properties (`stats.per_and_mean`) as the report's rows:
    'across' (the rows without a property) and 'per' (a row per property and method)."""
    mean = df["property"].isna()
    return {
        "across": family_rows(ordered(df[mean], "method"), across),
        "per": family_rows(ordered(df[~mean], "property", "method"), per),
    }


def property_page(
    name: str,
    data: dict[str, Any],
    summary: pd.DataFrame,
    caveats: dict[str, str],
    summed: list[str],
    described: dict[str, Any] | None = None,
    probe_dir: str | None = None,
) -> dict[str, Any]:
    """One property's section: its table (a row per method, a cell per label fraction), its plots and probes.
    `data`: its property summary; `summary`: its cells of the analysis; `described`: its config entry (column, dataset,
    folds), where there is one; the parity (ROC) plot where the runs' predictions are at hand."""
    runs = pd.DataFrame(data["runs"])
    kind = data.get("kind") or "regression"
    sc, classes = SCORES[kind], data.get("classes")
    unit = unit_label(data) if sc.lower_is_better else ""
    fractions = sorted(summary["fraction"].unique())
    table = []
    for m in method_order(summary["method"]):
        cells = []
        for f in fractions:
            r = summary[(summary["method"] == m) & (summary["fraction"] == f)]
            cells.append(table_cell(r.iloc[0], caveats.get(m), sc) if len(r) else None)
        table.append({"method": m, "dummy": m in DUMMIES, "cells": cells})
    # the parity (ROC) plot's second method is chosen on the validation score, never on test data
    top = summary[(summary["fraction"] == max(fractions)) & ~summary["method"].isin([*DUMMIES, "scratch"])]
    chosen = top.sort_values("val_score_mean").iloc[0]["method"] if len(top) else None
    parity_methods = ["scratch"] + ([chosen] if chosen else [])
    predicted = all((Path(d) / "predictions.parquet").is_file() for d in runs["dir"])  # (a summary of saved parts: not)
    parity = None
    if predicted:
        parity = roc_plot(runs, name, classes, parity_methods) if classes else parity_plot(runs, name, unit, parity_methods)
    modes = sorted({m for v in summary["precision"].dropna() for m in v.split(", ")}) if "precision" in summary else []
    return {
        "extensive": extensive_warning(data, summed),
        "failures": failure_notes(runs, summary, data, sc, unit),
        "mixed_precision": ", ".join(modes) if len(modes) > 1 else "",
        "name": name,
        "unit": unit,
        **(described or {"column": None, "dataset": None, "folds": None}),
        "fractions": [f"{100 * f:g}%" for f in fractions],
        "table": table,
        "parity_method": chosen if parity else None,
        "metric": sc.label,
        "kind": kind,
        "classes": classes or [],
        "curve": label_efficiency_plot(summary, name, unit, sc),
        "budget": budget_plot(summary, name, sc),
        "parity": parity,
        "probes": probe_table(read_table(Path(probe_dir) / "probes.parquet"), sc) if probe_dir else None,
        "map": embedding_map(read_table(Path(probe_dir) / "map.parquet"), name, unit, classes) if probe_dir else None,
    }


def pretrain_rows(manifests: dict[str, dict[str, Any]], histories: dict[str, list]) -> list[dict[str, Any]]:
    """The pretraining table: a row per pretraining stage (`manifests`: label -> its manifest)."""
    rows = []
    for m, man in manifests.items():
        objective = man["params"]["objective"]
        if man["params"].get("objective_params"):
            objective += " (" + ", ".join(f"{k}={v}" for k, v in man["params"]["objective_params"].items()) + ")"
        conv = convergence(histories[m]) if histories[m] else None  # trained here (scratch and imports have no history)
        final = histories[m][-1] if histories[m] else {}
        rows.append(
            {
                "method": m,
                "objective": objective,
                "epochs": len(histories[m]),
                "loss": fmt(final.get("loss", float("nan"))),
                "late": fmt(100 * conv["late_share"], 2) + " %" if conv and conv["late_share"] is not None else "–",
                "collapse": " / ".join(fmt(final.get(c, float("nan")), 2) for c in COLLAPSE),
                "flags": "; ".join(conv["flags"]) if conv else "",
                "pool": man.get("n_pool") or "–",
                "excluded": excluded_text(man),
                "speed": fmt(man.get("graphs_per_s") or float("nan")),
                "device": man.get("device"),
                "wall": fmt(man["wall_s"]),
            }
        )
    return rows


def summing_methods(methods: dict[str, dict[str, Any]]) -> list[str]:
    """The config's methods whose model sums over atoms (a foundation model's own readout)."""
    return [
        m
        for m, v in methods.items()
        if v.get("objective") == "foundation"
        and MODELS[{**OBJECTIVES["foundation"].defaults, **(v.get("params") or {})}["model"]].pooling == "sum"
    ]


def caveats_of(methods: dict[str, dict[str, Any]], foundation: dict[str, str]) -> dict[str, str]:
    """Per method, what a reader must know beside its numbers: a training set the leakage guard cannot see, and how a
    foundation model was trained (`foundation`: method -> its mode)."""
    caveats = {m: UNGUARDED[v.get("objective")] for m, v in methods.items() if v.get("objective") in UNGUARDED}
    for m, mode in foundation.items():
        caveats[m] = f"{mode}; {caveats[m]}" if m in caveats else mode
    return caveats


def render(**context: Any) -> str:
    """The report page (templates/report.html.j2) from its context."""
    # every string from a config or a data file is untrusted: escape everything (select_autoescape() would not match
    # the name report.html.j2 and escape nothing)
    env = Environment(loader=PackageLoader("matssl", "templates"), autoescape=True)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return env.get_template("report.html.j2").render(
        generated=generated,
        cap_warning=int(100 * CAP_WARNING),
        steep_share=f"{STEEP_SHARE:.0%}",
        collapsed_spread=COLLAPSED_SPREAD,
        **context,
    )


def method_rows(objectives: Iterable[str]) -> list[tuple[str, str, str, str]]:
    return [(m, *METHOD_INFO.get(m, (m, "", ""))) for m in sorted(set(objectives))]


def write_report(spec: dict[str, Any], out: Path) -> None:
    """The workflow's report: every property of the config, its probes, pretraining, rejections and provenance."""
    data = {name: read_json(p["target"]) for name, p in spec["properties"].items()}
    methods = spec["config"]["pretrain"]["methods"]
    histories = {m: read_json(Path(d) / "history.json") for m, d in spec["pretrain"].items()}
    manifests = {m: read_json(Path(d) / "manifest.json") for m, d in spec["pretrain"].items()}
    runs = Runs(props=data, pretrain={Path(d).name: manifests[m] for m, d in spec["pretrain"].items()})
    a = analyse(
        {n: (pd.DataFrame(d["runs"]), d.get("kind", "regression")) for n, d in data.items()},
        foundation=list(spec.get("foundation", {})),
        confirmatory=confirmatory_of(spec["config"]),
        controls=runs.controls,
    )
    caveats, summed = caveats_of(methods, spec.get("foundation", {})), summing_methods(methods)
    props = [
        property_page(
            name,
            data[name],
            a.cells[a.cells["property"] == name],
            caveats,
            summed,
            {k: p[k] for k in ("column", "dataset", "folds")},
            spec["probes"].get(name),
        )
        for name, p in spec["properties"].items()
    ]
    html = render(
        spec_digest=spec_digest(spec),
        answer=answer(a, caveats),
        config=spec["config"],
        pool=spec["pool"],
        leakage=spec["exclude_test_structures"],
        props=props,
        pretrain_rows=pretrain_rows(manifests, histories),
        loss_plot=loss_plot(histories),
        stages=stage_rows(spec["stages"]),
        rejections=rejection_rows(spec["stages"]),
        unlabelled=unlabelled_rows(spec["stages"]),
        methods=method_rows(m["objective"] for m in methods.values()),
    )
    with atomic_path(out) as tmp:
        tmp.write_text(html)


# --------------------------------------------------------------------------- `matssl summarize`
def pretrain_labels(runs: Runs) -> dict[str, str]:
    """The pretraining stages the runs started from, by a readable label (method, seed, budget) -> folder name."""
    out = {}
    for key in runs.used:
        p = runs.pretrain[key]["params"]
        epochs = (p.get("optim") or {}).get("epochs", 0)
        label = f"{p['method']} (seed {p['seed']}, {epochs} epochs)"
        out[label if label not in out else key] = key
    return out


def protocol_text(runs: Runs) -> str:
    """What the runs share, from their records: the encoder, the finetuning protocol, the seeds and where they ran."""
    d = next(iter(runs.props.values()))
    o = d["finetune"]["optim"]
    frame = runs.frame()
    enc = next((m["params"]["encoder"] for m in runs.pretrain.values() if "encoder" in m["params"]), None)
    encoder = f"{enc['name'].upper()} {enc['layers']} x {enc['width']}; " if enc else ""
    return (
        f"{encoder}finetuning with learning rates {o['lrs']} chosen on the validation score, at most "
        f"{o['max_steps']} steps, patience {o['patience']}; finetuning seeds {sorted(set(frame['seed']))}, pretraining "
        f"seeds {sorted(set(frame['pretrain_seed']))}; {len(frame)} runs on {', '.join(sorted(set(frame['device'])))}."
    )


def config_methods(config: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A config's methods, read as YAML (entries that are not mappings left out)."""
    methods = ((config or {}).get("pretrain") or {}).get("methods") or {}
    return {m: v for m, v in methods.items() if isinstance(v, dict)} if isinstance(methods, dict) else {}


def summary_caveats(runs: Runs, config: dict[str, Any] | None) -> dict[str, str]:
    """`caveats_of` for a summary: the config's methods where it is given (a foundation model's mode from its `train`),
    and every method without a pretraining stage of ours is a foundation model the guard cannot see."""
    methods = config_methods(config)
    modes = {
        m: "every weight finetuned"
        if {**OBJECTIVES["foundation"].defaults, **(v.get("params") or {})}["train"] == "all"
        else "frozen, head only"
        for m, v in methods.items()
        if v.get("objective") == "foundation"
    }
    imported = {
        r["method"]
        for d in runs.props.values()
        for r in d["runs"]
        if pretrained_from(r) and runs.pretrain[r["pretrain"]]["params"].get("objective") == "pretrained"
    }
    return (
        caveats_of(methods, modes)
        | {m: UNGUARDED["foundation"] for m in runs.foundation if m not in methods}
        | {m: UNGUARDED["pretrained"] for m in imported if m not in methods}
    )


def located(runs: Runs, d: dict[str, Any]) -> dict[str, Any]:
    """A property's runs with each `dir` where its folder is now (in the summarised folder that holds it; a copy
    without the finetuning folders has none: its runs' predictions are not at hand)."""
    return {**d, "runs": [{**r, "dir": str(runs.run_dirs.get(stage_key(r), "(not here)"))} for r in d["runs"]]}


def write_summary_report(runs: Runs, a: Analysis, config: dict[str, Any] | None, out: Path) -> None:
    """The report page of a summary of several results folders: the answer, family by family, each property's table and
    plots, the pretraining stages; no probes, rejections or provenance (a results folder's own report has them)."""
    methods = config_methods(config)
    caveats = summary_caveats(runs, config)
    props = [
        property_page(name, located(runs, d), a.cells[a.cells["property"] == name], caveats, summing_methods(methods))
        for name, d in runs.props.items()
    ]
    labels = pretrain_labels(runs)
    histories = {m: read_json(runs.pretrain_dirs[k] / "history.json") for m, k in labels.items()}
    objectives = [runs.pretrain[k]["params"]["objective"] for k in labels.values()]
    html = render(
        spec_digest="",
        answer=answer(a, caveats),
        config=None,
        sources=runs.sources,
        protocol=protocol_text(runs),
        props=props,
        pretrain_rows=pretrain_rows({m: runs.pretrain[k] for m, k in labels.items()}, histories),
        loss_plot=loss_plot(histories),
        stages=[],
        rejections=None,
        unlabelled=[],
        methods=method_rows([*objectives, *(["foundation"] if runs.foundation else [])]),
    )
    with atomic_path(out) as tmp:
        tmp.write_text(html)


def minus(text: str) -> str:
    """A number's minus sign as the typographic one (not a hyphen in a word)."""
    return re.sub(r"(?<![\w])-(?=\d)", "−", text)


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|---" * len(header) + "|",
        *("| " + " | ".join(map(str, r)) + " |" for r in rows),
        "",
    ]


HEADERS = {
    "k": "properties",
    "tau": "τ (%)",
    "i2": "I²",
    "fraction": "labels",
    "budgets": "budgets (epochs)",
    "baseline": "control",
}  # a family table's column names


def markdown_families(a: Analysis, caveats: dict[str, str] | None = None) -> list[str]:
    """The answer, family by family, as Markdown: the same rows as the report's (`answer`)."""
    ans = answer(a, caveats or {})
    lines = [
        "## The answer, family by family",
        "",
        "Every interval is a plain 95 % interval; each family has its own correction ("
        + "; ".join(f"{f['family']}, {f['adjust']} over {f['n']}" for f in ans["families"])
        + ").",
        "",
    ]

    def family(title: str, rows: list[dict[str, Any]], keys: list[str]) -> list[str]:
        if not rows:
            return []
        body = [
            [r[k] for k in keys]
            + [minus(r["verdict"]), r["p"], r["p_adjusted"] + (" (named)" if r["named"] else ""), r["note"] or ""]
            for r in rows
        ]
        header = [HEADERS.get(k, k) for k in keys]
        return [f"### {title}", "", *markdown_table([*header, "verdict (95 % interval)", "p", "p adjusted", "note"], body)]

    lines += family("Named beforehand: the confirmatory comparisons (Holm)", ans["confirmatory"], ["method", "against", "on"])
    lines += family("On average across the properties (random effects; Holm)", ans["across"], ["method", "k", "tau", "i2"])
    lines += family(
        "On average across the properties, per label fraction (Holm)", ans["across_fraction"], ["method", "fraction", "k", "tau"]
    )
    for name, rows in ans["primary"].items():
        lines += family(f"Per method and property, pooled over the label fractions: {name} (Holm)", rows, ["property", "method"])
    lines += family("Foundation models against scratch (Holm)", ans["foundation"], ["property", "method"])
    for model, rows in ans["versus"].items():
        lines += family(f"Pretrained methods against {model} (Holm)", rows, ["property", "method"])
    for key, title, keys in (
        ("control", "Against the control of the same budget", ["method", "baseline"]),
        ("budget", "Change per doubling of the pretraining budget", ["method", "budgets"]),
    ):
        if ans[key]:
            lines += family(f"{title}, on average across the properties (Holm)", ans[key]["across"], [*keys, "k", "tau"])
            lines += family(f"{title}, per property (Holm)", ans[key]["per"], ["property", *keys])
    return lines


def markdown_cells(a: Analysis, runs: Runs) -> list[str]:
    """Per label fraction, a row per method and a column per property: the test score, and the per-cell screen's
    verdict against scratch (Benjamini-Hochberg)."""
    lines = ["## Per cell (exploratory screen)", ""]
    cells, frame = a.cells, runs.frame()
    for f in sorted(cells["fraction"].unique()):
        at = cells[cells["fraction"] == f]
        props = [p for p in runs.props if (at["property"] == p).any()]
        rows = []
        for m in method_order(at["method"]):
            row = [m]
            for p in props:
                r = at[(at["property"] == p) & (at["method"] == m)]
                if r.empty:
                    row.append("–")
                    continue
                c = table_cell(r.iloc[0], sc=SCORES[runs.props[p].get("kind") or "regression"])
                text = c["value"] + (minus(f": {c['verdict']}") if c["change"] else "")
                row.append(text + "".join(f"; {fl}" for fl in c["flags"]))
            rows.append(row)
        header = ["method"] + [f"{p} ({unit_label(runs.props[p]) or '–'})" for p in props]
        lines += [f"### {100 * f:g} % of the training labels", "", *markdown_table(header, rows)]
        held = frame[(frame["fraction"] == f) & frame["n_test_clipped"].notna()] if "n_test_clipped" in frame else frame[:0]
        if len(held):  # (a classification's runs, and runs of code from before it was recorded, do not say)
            n = held.groupby("method", sort=False)[["n_test_clipped", "n_test"]].sum()
            lines += [
                "Test predictions held at the training targets' range (over properties): "
                + ", ".join(f"{m} {int(r['n_test_clipped'])} of {int(r['n_test'])}" for m, r in n.iterrows()),
                "",
            ]
    return lines


def markdown_pretraining(runs: Runs) -> list[str]:
    """The pretraining stages the runs started from: a row each (what it trained, on how many structures, how fast)."""
    rows = []
    for label, key in pretrain_labels(runs).items():
        man = runs.pretrain[key]
        rows.append(
            [
                label,
                man.get("n_pool") or "–",
                excluded_text(man),
                fmt(man["wall_s"]),
                fmt(man.get("graphs_per_s")),
                f"{man.get('device', 'cpu')} ({man.get('precision') or 'unrecorded'})",
                key,
            ]
        )
    if not rows:
        return []
    header = ["method", "pool", "excluded by the leakage guard", "wall (s)", "graphs/s", "device (precision)", "stage"]
    return ["## Pretraining", "", *markdown_table(header, rows)]


def where_they_ran(runs: Runs) -> list[str]:
    """Per property, how many runs ran on which device in which numeric mode, where not all on one (a GPU trains in
    bf16 autocast, a CPU in fp32: numbers from both in one cell are said to be)."""
    frame = runs.frame()
    precision = frame["precision"].fillna("unrecorded") if "precision" in frame else "unrecorded"
    frame = frame.assign(mode=frame["device"].astype(str) + " (" + precision + ")")
    if frame["mode"].nunique() < 2:
        return []
    per = [
        f"{prop} " + ", ".join(f"{n} on {mode}" for mode, n in g["mode"].value_counts().items())
        for prop, g in frame.groupby("property", sort=False)
    ]
    return ["Where the runs ran: " + "; ".join(per) + ".", ""]


def markdown_summary(runs: Runs, a: Analysis, config: dict[str, Any] | None = None) -> list[str]:
    """`matssl summarize`'s summary.md, as lines: where the runs came from, the answer family by family, the per-cell
    tables and the pretraining stages."""
    lines = [
        "# Summary",
        "",
        "Runs from: " + "; ".join(f"{src} ({n} runs)" for src, n in runs.sources.items()) + ".",
        "",
        protocol_text(runs),
        "",
        *where_they_ran(runs),
    ]
    if a.unmade:
        lines += [unmade_text(a.unmade), ""]
    return [*lines, *markdown_families(a, summary_caveats(runs, config)), *markdown_cells(a, runs), *markdown_pretraining(runs)]


def write_summary(
    folders: list[str | Path], out: Path, config: dict[str, Any] | None = None, properties: list[str] | None = None
) -> tuple[Runs, Analysis]:
    """`matssl summarize`: one summary of the runs of `folders` (results folders, or copies of them), the statistics'
    families over all of them: `out`/summary.md, summary.json (every cell with its comparison) and report.html.
    `config`: a config as a mapping (its `statistics.confirmatory`; its methods' kinds for the report's caveats)."""
    runs = collect(folders, properties)
    a = runs.analyse(confirmatory_of(config))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(markdown_summary(runs, a, config)) + "\n")
    (out / "summary.json").write_text(json.dumps(a.cells.to_dict("records"), indent=1, default=str) + "\n")
    write_summary_report(runs, a, config, out / "report.html")
    return runs, a
