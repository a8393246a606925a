"""bench/compare_parts.py: runs of two protocols paired run by run (same method, fold, fraction and seed), a change
where every pair moved is detectable, none where no run changed, runs without a partner left out; pairs from other
encoders or other folds refused."""

import json

from .workflow import bench

SETTINGS = {
    "head_width": 128,
    "min_val": 10,
    "val_fraction": 0.1,
    "optim": {"batch_size": 64, "lrs": [0.001], "max_steps": 3000, "patience": 400, "warmup_steps": 50},
}


def run(method: str, fold: int, seed: int, mae: float, cap: bool) -> dict:
    dummy = {f"dummy_{k}_{m}": v for k in ("mean", "median") for m, v in (("mae", 0.3), ("rmse", 0.4), ("r2", 0.0))}
    return {
        "method": method,
        "base_method": method,
        "pretrain_seed": 0,
        "pretrain_epochs": 0 if method == "scratch" else 4,
        "fold": fold,
        "fraction": 1.0,
        "seed": seed,
        "mae": mae,
        "rmse": 1.3 * mae,
        "r2": 0.8,
        "val_mae": mae,
        "n_train": 900,
        "n_val": 100,
        "n_test": 250,
        "n_train_fold": 1000,
        "n_test_clipped": 0,
        "lr": 0.001,
        "best_step": 2990 if cap else 1500,
        "steps": 3000 if cap else 1900,
        "stopped": "cap" if cap else "early",
        "hit_cap": cap,
        "precision": "fp32",
        "pretrain": f"{method}-s0-e4",
        "device": "cpu",
        "wall_s": 60.0,
        "dir": f"results/finetune/p-{method}-f{fold}-s{seed}",
    } | dummy


def write_part(parts, name: str, max_steps: int, runs: list[dict], splits: str = "f01d") -> None:
    folder = parts / name
    (folder / "properties").mkdir(parents=True)
    (folder / "pretrain").mkdir()
    (folder / "part.json").write_text(json.dumps({"name": name, "commit": f"{name}1"}))
    for key in {r["pretrain"] for r in runs}:  # the encoders the runs started from, by their bytes' hash
        (folder / "pretrain" / key).mkdir()
        (folder / "pretrain" / key / "manifest.json").write_text(json.dumps({"files": {"encoder.pt": {"sha256": key}}}))
    finetune = {**SETTINGS, "optim": {**SETTINGS["optim"], "max_steps": max_steps}}
    prop = {
        "property": "p",
        "unit": "GPa",
        "transform": "log10",
        "kind": "regression",
        "per_atom": "none",
        "classes": None,
        "finetune": finetune,
        "finetune_code": "c0de",
        "splits": splits,
        "runs": runs,
    }
    (folder / "properties" / "p.json").write_text(json.dumps(prop))


def compare(parts, out, new: str):
    return bench(
        "compare_parts.py",
        "--property",
        "p",
        "--parts",
        new,
        "--against",
        "old",
        "--name",
        "cap",
        "--out",
        str(out),
        "--parts-dir",
        str(parts),
        cwd=parts,
    )


def test_two_protocols_compared_run_by_run(tmp_path):
    parts, out = tmp_path / "parts", tmp_path / "out"
    wobble = [0.0, 0.0007, -0.0004, 0.0002, -0.0006]
    old = [
        run(m, f, s, 0.10 + 0.01 * f + 0.002 * s, cap=m == "fp" and f < 3)
        for m in ("scratch", "fp")
        for f in range(5)
        for s in range(3)
    ]
    new = [run("scratch", f, 0, 0.10 + 0.01 * f, cap=False) for f in range(5)]  # unchanged
    new += [run("fp", f, 0, 0.09 + 0.01 * f + wobble[f], cap=False) for f in range(5)]  # 0.01 lower in every fold
    new += [run("other", f, 0, 0.2, cap=False) for f in range(5)]  # no partner among the old runs
    write_part(parts, "old", 3000, old)
    write_part(parts, "new", 6000, new)
    proc = compare(parts, out, "new")
    assert proc.returncode == 0, proc.stderr
    text = (out / "cap_comparison.md").read_text()
    assert "Settings that differ (old → new): optim.max_steps: 3000 → 6000." in text
    assert (
        "Parts and their commits: old1 (old), new1 (new); where the runs ran: old cpu fp32, new cpu fp32." in text
        and "over the 2 comparisons tested" in text
    )
    assert "Test MAE (mean over the paired runs, log10(GPa))" in text
    rows = {r["method"]: r for r in json.loads((out / "cap_comparison.json").read_text())}
    assert sorted(rows) == ["fp", "scratch"] and {r["n_pairs"] for r in rows.values()} == {5}
    fp = rows["fp"]
    assert abs(fp["mae_mean"] - fp["old_mae_mean"] + 0.01) < 0.001 and fp["verdict"].startswith("better with the new")
    assert fp["old_cap_share"] == 0.6 and fp["cap_share"] == 0.0
    assert (
        "| fp | 100 % | 5 | 0.120, 3, 2,990 | 0.110, 0, 1,500 | better with the new settings: -8.5 % (95 % interval -10.3 to -6.6 %) |"
        in text
    )
    assert rows["scratch"]["verdict"].startswith("no detectable difference") and rows["scratch"]["change_pct"] == 0

    # a pair whose runs started from other encoders (pretraining again, with other code): refused
    retrained = [{**r, "pretrain": "fp-s0-0ther"} if r["method"] == "fp" else r for r in new]
    write_part(parts, "retrained", 6000, retrained)
    proc = compare(parts, out, "retrained")
    assert proc.returncode != 0 and "5 paired runs started from other pretraining stages" in proc.stderr
    # other folds: no run pairs
    write_part(parts, "refolded", 6000, new, splits="0ther")
    proc = compare(parts, out, "refolded")
    assert proc.returncode != 0 and "the two sides differ in ['splits']" in proc.stderr
