import numpy as np
import pytest

from matssl.evaluate import kfold, label_subset, matbench_folds
from matssl.sources import matbench_ids


def test_matbench_folds_equal_the_official_fold_file():
    # first test ids of fold_0 and the fold sizes in matbench_v0.1_validation.json (matbench_dielectric, jdft2d)
    folds = matbench_folds(matbench_ids("matbench_dielectric", 4764))
    assert folds[0]["test"][:5] == [
        "mb-dielectric-0008",
        "mb-dielectric-0010",
        "mb-dielectric-0019",
        "mb-dielectric-0025",
        "mb-dielectric-0031",
    ]
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


def test_the_extensive_warning_fires_on_an_extensive_target_only():
    import pandas as pd

    from matssl.evaluate import atoms_spearman
    from matssl.report import extensive_warning

    rng = np.random.default_rng(0)
    n_atoms = pd.Series(rng.integers(1, 60, 300).astype(float))
    per_cell = n_atoms * 25.0 * rng.uniform(0.8, 1.2, 300)  # e.g. a heat capacity per cell
    intensive = pd.Series(rng.normal(2.0, 0.5, 300))  # e.g. a refractive index
    rho_ext, rho_int = atoms_spearman(per_cell, n_atoms), atoms_spearman(intensive, n_atoms)
    assert rho_ext > 0.9 and abs(rho_int) < 0.2
    plain, summed = extensive_warning({"atoms_spearman": rho_ext}, []), extensive_warning({"atoms_spearman": rho_ext}, ["chgnet"])
    assert "Spearman ρ = 0.9" in plain and "per_atom: cell" in plain and "chgnet" not in plain
    assert "chgnet sum over atoms, so their features carry the cell size" in summed
    assert extensive_warning({"atoms_spearman": rho_int}, ["chgnet"]) == ""
    assert extensive_warning({"atoms_spearman": rho_ext, "per_atom": "cell"}, ["chgnet"]) == ""  # already learnt per atom


def test_stratified_folds_and_subsets_keep_the_class_ratios():
    import pandas as pd

    from matssl.evaluate import stratified_kfold

    ids = [f"s{i:03d}" for i in range(300)]
    labels = ["metal" if i % 3 == 0 else "insulator" for i in range(300)]  # 1 : 2
    folds = stratified_kfold(ids, labels, 5, seed=0)
    of = dict(zip(ids, labels, strict=True))
    assert sorted(sum((f["test"] for f in folds), [])) == ids
    assert all(sum(of[i] == "metal" for i in f["test"]) == 20 for f in folds)  # a fifth of the 100 metals each
    assert stratified_kfold(ids, labels, 5, seed=0) == folds and stratified_kfold(ids, labels, 5, seed=1) != folds
    classes = pd.Series(labels, index=ids)
    train = folds[0]["train"]
    subsets = {f: label_subset(train, f, seed=0, fold=0, classes=classes) for f in (0.1, 0.25, 1.0)}
    for f, sub in subsets.items():
        metals = sum(of[i] == "metal" for i in sub)
        assert metals == int(np.ceil(f * 80)) and len(sub) - metals == int(np.ceil(f * 160)) and len(set(sub)) == len(sub)
    assert set(subsets[0.1]) < set(subsets[0.25]) < set(subsets[1.0])  # nested
    # a rare class keeps at least one structure
    rare = pd.Series(["a"] * 99 + ["b"], index=ids[:100])
    assert "s099" in label_subset(ids[:100], 0.05, seed=0, fold=0, classes=rare)


def test_classification_metrics_and_the_majority_dummy_by_hand():
    from matssl.evaluate import class_frequencies, classification_metrics

    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.35, 0.65], [0.2, 0.8]])
    m = classification_metrics(y, proba)
    # AUC: of the 4 (positive, negative) pairs, 0.65 > 0.6, 0.65 > 0.1, 0.8 > 0.6, 0.8 > 0.1: 1.0; accuracy 3/4
    assert m["roc_auc"] == 1.0 and m["accuracy"] == 0.75
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.65, 0.8])))
    freq = class_frequencies(np.array([0, 0, 0, 1]), 2)  # add-one: (3+1)/(4+2), (1+1)/(4+2)
    assert freq == pytest.approx([2 / 3, 1 / 3])
    dummy = classification_metrics(y, np.tile(freq, (4, 1)))
    assert dummy["roc_auc"] == 0.5 and dummy["accuracy"] == 0.5  # always the majority class
    three = classification_metrics(np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 1]] * 0.7 + 0.1)
    assert three["accuracy"] == 0.75 and three["roc_auc"] == pytest.approx(np.mean([1.0, 5 / 6, 0.75]))  # one vs rest
