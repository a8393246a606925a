"""Check our Matbench folds against the official fold file, for every task in it.

    .venv/bin/python bench/check_folds.py [../shared/data/matbench/matbench_v0.1_validation.json.gz]

Writes bench/results/matbench_folds.json: per task, whether each fold's test ids are identical.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from matssl import matbench_folds

ROOT = Path(__file__).resolve().parents[1]
# Matbench stratifies the folds of its classification tasks by label (StratifiedKFold); matssl's
# properties are regressions, so only the regression tasks are compared.
CLASSIFICATION = {"matbench_expt_is_metal", "matbench_glass", "matbench_mp_is_metal"}


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/data/matbench/matbench_v0.1_validation.json.gz")
    with gzip.open(path, "rt") as fh:
        splits = json.load(fh)["splits"]
    out = {}
    for task, folds in sorted(splits.items()):
        if task in CLASSIFICATION:
            continue
        ids = sorted({i for f in folds.values() for i in f["test"]})  # zero-padded ids sort in row order
        ours = matbench_folds(ids)
        out[task] = all(set(ours[k]["test"]) == set(folds[f"fold_{k}"]["test"]) for k in range(5))
    result = {
        "command": "python bench/check_folds.py",
        "file": path.name,
        "regression_tasks_identical": out,
        "all_identical": all(out.values()),
    }
    (ROOT / "bench/results/matbench_folds.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
