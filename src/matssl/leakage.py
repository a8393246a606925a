"""The leakage guard: which pretraining-pool structures are also downstream test structures.

Three ways to recognise one, combined as configured (`pretrain.exclude_match`):
- `id`: the pool row has the same id (works when both come from the same database, e.g. mp-ids);
- `composition_volume`: same reduced composition and volume per atom within a relative tolerance
  (cheap, and robust to different ids, settings and cell choices of the same relaxed crystal);
- `structure`: pymatgen's `StructureMatcher` (default tolerances) among pool rows with the same reduced
  composition (the strictest test; polymorphs of one composition are told apart).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from functools import reduce

import numpy as np
import pandas as pd


def composition_key(numbers) -> str:
    """Reduced composition as a canonical string, e.g. 'Z8:3 Z26:2' for Fe2O3 in any cell."""
    counts = Counter(int(z) for z in numbers)
    g = reduce(math.gcd, counts.values())
    return " ".join(f"Z{z}:{n // g}" for z, n in sorted(counts.items()))


def volume_per_atom(lattice, n_atoms: int) -> float:
    return abs(float(np.linalg.det(np.asarray(lattice, float).reshape(3, 3)))) / n_atoms


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "id": df["id"].to_numpy(),
        "key": [composition_key(n) for n in df["numbers"]],
        "vpa": [volume_per_atom(lat, len(n)) for lat, n in zip(df["lattice"], df["numbers"], strict=True)],
    })  # fmt: skip


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


def structure_matches(pool: pd.DataFrame, test: pd.DataFrame) -> set[str]:
    """Pool ids that pymatgen's StructureMatcher finds equal to a test structure of the same composition."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure

    def structure(row) -> Structure:
        return Structure(Lattice(np.asarray(row.lattice).reshape(3, 3)), list(row.numbers),
                         np.asarray(row.frac_coords).reshape(-1, 3))  # fmt: skip

    by_key: dict[str, list] = defaultdict(list)
    for row in test.itertuples(index=False):
        by_key[composition_key(row.numbers)].append(row)
    matcher = StructureMatcher()
    out = set()
    for row in pool.itertuples(index=False):
        candidates = by_key.get(composition_key(row.numbers))
        if not candidates:
            continue
        s = structure(row)
        if any(matcher.fit(s, structure(t)) for t in candidates):
            out.add(row.id)
    return out


def leaked_ids(pool: pd.DataFrame, test: pd.DataFrame, match: list[str], tolerance: float) -> dict[str, set[str]]:
    """For each criterion in `match`, the pool ids it recognises as test structures."""
    found: dict[str, set[str]] = {}
    if "id" in match:
        found["id"] = set(pool["id"]) & set(test["id"])
    if "composition_volume" in match:
        found["composition_volume"] = composition_volume_matches(pool, test, tolerance)
    if "structure" in match:
        found["structure"] = structure_matches(pool, test)
    return found
