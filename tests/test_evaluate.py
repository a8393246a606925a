import math

import pandas as pd
import pytest

from matssl.evaluate import kfold, label_subset, matbench_folds, paired_test, summarize_runs
from matssl.sources import matbench_ids


def test_matbench_folds_equal_the_official_fold_file():
    # first test ids of fold_0 and the fold sizes in matbench_v0.1_validation.json (matbench_dielectric, jdft2d)
    folds = matbench_folds(matbench_ids("matbench_dielectric", 4764))
    assert folds[0]["test"][:5] == ["mb-dielectric-0008", "mb-dielectric-0010", "mb-dielectric-0019",
                                    "mb-dielectric-0025", "mb-dielectric-0031"]  # fmt: skip
    assert [len(f["test"]) for f in folds] == [953, 953, 953, 953, 952]
    jd = matbench_folds(matbench_ids("matbench_jdft2d", 636))
    assert sorted(sum((f["test"] for f in jd), [])) == matbench_ids("matbench_jdft2d", 636)


def test_kfold_partitions_ids():
    ids = [f"s{i}" for i in range(23)]
    folds = kfold(ids, 5, seed=3)
    tests = sum((f["test"] for f in folds), [])
    assert sorted(tests) == sorted(ids)
    for f in folds:
        assert not set(f["train"]) & set(f["test"]) and len(f["train"]) + len(f["test"]) == 23
    assert kfold(ids, 5, seed=3) == folds and kfold(ids, 5, seed=4) != folds


def test_label_subsets_are_nested_and_method_independent():
    train = [f"s{i:03d}" for i in range(200)]
    subsets = {f: label_subset(train, f, seed=0, fold=1) for f in (0.05, 0.1, 0.25, 0.5, 1.0)}
    assert [len(s) for s in subsets.values()] == [10, 20, 50, 100, 200]
    fr = list(subsets)
    for small, large in zip(fr, fr[1:], strict=False):
        assert subsets[large][: len(subsets[small])] == subsets[small]
    assert label_subset(list(reversed(train)), 0.1, seed=0, fold=1) == subsets[0.1]  # input order is irrelevant
    assert label_subset(train, 0.1, seed=1, fold=1) != subsets[0.1]


def test_paired_test_known_answer():
    base = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    better = [b - 0.1 * (k + 1) for k, b in enumerate(base)]
    # all six differences have the same sign: exact two-sided p = 2 / 2**6
    assert paired_test(base, better) == pytest.approx(2 / 64)
    assert math.isnan(paired_test(base, base))
    assert math.isnan(paired_test([1.0], [0.5]))


def test_summary_pairs_by_fold_and_seed():
    rows = []
    for fold in range(5):
        rows.append({"method": "scratch", "fraction": 1.0, "fold": fold, "seed": 0, "mae": 2.0, "rmse": 3.0, "r2": 0.5})
        rows.append({"method": "clr", "fraction": 1.0, "fold": fold, "seed": 0, "mae": 1.5 + 0.01 * fold, "rmse": 2.0, "r2": 0.7})
    s = summarize_runs(pd.DataFrame(rows)).set_index("method")
    assert s.loc["clr", "change_pct"] == pytest.approx(100 * (1.52 / 2.0 - 1))
    assert s.loc["clr", "p_value"] == pytest.approx(2 / 32)
    assert math.isnan(s.loc["scratch", "change_pct"]) and s.loc["scratch", "n_runs"] == 5
