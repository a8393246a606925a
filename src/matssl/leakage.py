"""The leakage guard: which pretraining-pool structures are also downstream test structures.

Three ways to recognise one, combined as configured (`pretrain.exclude_match`):
- `id`: the pool row has the same id (works when both come from the same database, e.g. mp-ids);
- `composition_volume`: same reduced composition and volume per atom within a relative tolerance
  (cheap, and robust to different ids, settings and cell choices of the same relaxed crystal);
- `structure`: pymatgen's `StructureMatcher` (default tolerances) among pool rows with the same reduced
  composition (the strictest test; polymorphs of one composition are told apart).

The `leakage` stage finds them once per pool and set of test folds (`excluded.json`); every pretraining job reads it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matssl.io import read_json, write_json
from matssl.table import Crystal, crystals_from_table, read_table

log = logging.getLogger(__name__)

COLUMNS = ["id", "numbers", "lattice", "frac_coords"]  # what a criterion reads of a structure table


def composition_key(numbers) -> str:
    """Reduced composition as a canonical string, e.g. 'Z8:3 Z26:2' for Fe2O3 in any cell."""
    tally = Counter(int(z) for z in numbers)
    g = reduce(math.gcd, tally.values())
    return " ".join(f"Z{z}:{n // g}" for z, n in sorted(tally.items()))


def volume_per_atom(lattice, n_atoms: int) -> float:
    return abs(float(np.linalg.det(np.asarray(lattice, float).reshape(3, 3)))) / n_atoms


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": df["id"].to_numpy(),
            "key": [composition_key(n) for n in df["numbers"]],
            "vpa": [volume_per_atom(lat, len(n)) for lat, n in zip(df["lattice"], df["numbers"], strict=True)],
        }
    )


def composition_volume_matches(pool: pd.DataFrame, test: pd.DataFrame, tolerance: float) -> set[str]:
    """Pool ids whose reduced composition equals a test structure's and whose volume per atom is within
    `tolerance` (relative) of it. Both frames need `id`, `numbers` and `lattice` (structure-table rows)."""
    t = _keyed(test)
    volumes = {k: np.sort(g["vpa"].to_numpy()) for k, g in t.groupby("key")}
    out = set()
    for id_, key, v in _keyed(pool).itertuples(index=False):
        vs = volumes.get(key)
        if vs is None:
            continue
        j = np.searchsorted(vs, v)
        near = vs[max(j - 1, 0) : j + 1]
        if np.any(np.abs(near - v) <= tolerance * near):
            out.add(id_)
    return out


def _matching(pairs: list[tuple[Crystal, list[Crystal]]]) -> list[str]:
    """The pool ids among (pool crystal, same-composition test crystals) pairs that StructureMatcher finds equal to
    one."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher()
    tests: dict[str, Any] = {}  # each test structure built once

    def test(c: Crystal):
        if c.id not in tests:
            tests[c.id] = c.structure()
        return tests[c.id]

    return [c.id for c, candidates in pairs if any(matcher.fit(c.structure(), test(t)) for t in candidates)]


def structure_matches(pool: pd.DataFrame, test: pd.DataFrame, threads: int = 1) -> set[str]:
    """Pool ids that pymatgen's StructureMatcher (default tolerances) finds equal to a test structure of the same
    reduced composition; the pairs are shared among `threads` worker processes."""
    by_key: dict[str, list[Crystal]] = defaultdict(list)
    for c in crystals_from_table(test):
        by_key[composition_key(c.numbers)].append(c)
    pairs = [(c, by_key[k]) for c in crystals_from_table(pool) if (k := composition_key(c.numbers)) in by_key]
    log.info(
        "structure matching: %d pool structures share a composition with a test structure (%d pairs)",
        len(pairs),
        sum(len(c) for _, c in pairs),
    )
    n = min(len(pairs), max(20, threads * 4))
    chunks = [pairs[i::n] for i in range(n)]  # interleaved: the many pairs of a common composition spread out
    out: set[str] = set()
    with contextlib.ExitStack() as stack:
        if threads <= 1:
            done = map(_matching, chunks)
        else:  # spawned, not forked: the job process has threads (torch's, pyarrow's) whose locks a fork could copy
            ex = stack.enter_context(ProcessPoolExecutor(threads, mp_context=multiprocessing.get_context("spawn")))
            done = (f.result() for f in as_completed([ex.submit(_matching, c) for c in chunks]))
        for i, found in enumerate(done, 1):
            out.update(found)
            log.info("structure matching: %d/%d of the pairs' chunks done, %d matches", i, n, len(out))
    return out


def leaked_ids(
    pool: pd.DataFrame, test: pd.DataFrame, match: list[str], tolerance: float | None, threads: int = 1
) -> dict[str, set[str]]:
    """For each criterion in `match`, the pool ids it recognises as test structures."""
    found: dict[str, set[str]] = {}
    if "id" in match:
        found["id"] = set(pool["id"]) & set(test["id"])
    if "composition_volume" in match:
        found["composition_volume"] = composition_volume_matches(pool, test, tolerance)
    if "structure" in match:
        found["structure"] = structure_matches(pool, test, threads)
    return found


def downstream_test_structures(up: dict[str, str]) -> pd.DataFrame:
    """Every structure in a test fold of a property (upstream `splits:<p>` and `structures:<p>`), each dataset read
    once (two properties of one dataset share their structures)."""
    ids: dict[str, set[str]] = defaultdict(set)  # structure table -> its test ids
    for name, d in up.items():
        if name.startswith("splits:"):
            folds = read_json(Path(d) / "folds.json")["folds"]
            ids[up["structures:" + name.split(":", 1)[1]]].update(i for fold in folds for i in fold["test"])
    tests = []
    for table, wanted in ids.items():
        df = read_table(Path(table) / "structures.parquet", columns=COLUMNS)
        tests.append(df[df["id"].isin(wanted)])
    return pd.concat(tests, ignore_index=True) if tests else pd.DataFrame(columns=COLUMNS)


def run_leakage(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """The `leakage` stage: the pool ids each criterion recognises as a downstream test structure (`excluded.json`)."""
    p, up = spec["params"], spec["upstream"]
    pool = read_table(Path(up["structures"]) / "structures.parquet", columns=COLUMNS)
    test = downstream_test_structures(up)
    # (the tolerance is a parameter only where composition + volume matching uses it)
    found = leaked_ids(pool, test, p["exclude_match"], p.get("volume_tolerance"), spec["runtime"].get("threads", 1))
    write_json({k: sorted(v) for k, v in found.items()}, out / "excluded.json")
    facts = counts(found, set(pool["id"]))
    log.info(
        "leakage: %d of %d pool structures are test structures (%s)",
        facts["n_excluded"],
        len(pool),
        ", ".join(f"{k} {v}" for k, v in facts["excluded_by"].items()),
    )
    return {"n_pool": len(pool), "n_test": len(test), **facts}


def counts(found: dict[str, set[str]], among: set[str]) -> dict[str, Any]:
    """How many of `among` the guard excludes: in all, per criterion, and only by that criterion (what it adds to
    the others, e.g. how many more the structure matcher removes)."""
    found = {k: v & among for k, v in found.items()}
    others = {k: set().union(*(v for o, v in found.items() if o != k)) for k in found}
    return {
        "n_excluded": len(set().union(*found.values())),
        "excluded_by": {k: len(v) for k, v in found.items()},
        "only_by": {k: len(v - others[k]) for k, v in found.items()},
    }
