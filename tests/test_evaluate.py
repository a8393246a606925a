from matssl.evaluate import kfold, label_subset, matbench_folds
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
