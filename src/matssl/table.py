"""The canonical structure table: one Parquet row per crystal, read by every later stage.

Columns: `id` (unique string), `formula`, `lattice` (9 floats, Å, row vectors), `numbers` (list of Z),
`frac_coords` (flat list, 3 per site), `source`, one column per label (null where unknown; float, or text for a
labels CSV's text column: class names) and optional metadata columns (`crystal_system`, `spacegroup`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pymatgen.optimization.neighbors import find_points_in_spheres

from matssl.elements import symbol
from matssl.io import atomic_path

BASE_COLUMNS = ["id", "formula", "lattice", "numbers", "frac_coords", "source"]
META_COLUMNS = ["crystal_system", "spacegroup", "parent"]


@dataclass
class Crystal:
    """A periodic structure as plain arrays (no pymatgen object: cheap to make by the thousand)."""

    id: str
    lattice: np.ndarray  # (3, 3) row vectors, Å
    numbers: np.ndarray  # (n,) atomic numbers
    frac: np.ndarray  # (n, 3) fractional coordinates
    labels: dict[str, float | str | None] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def cart(self) -> np.ndarray:
        return self.frac @ self.lattice

    @property
    def formula(self) -> str:
        counts = Counter(int(z) for z in self.numbers)
        return " ".join(f"{symbol(z)}{n}" for z, n in sorted(counts.items()))

    def structure(self):
        """The crystal as a pymatgen Structure (for pymatgen's and other models' own tools)."""
        from pymatgen.core import Lattice, Structure

        return Structure(Lattice(self.lattice), self.numbers.tolist(), self.frac)


def periodic_pairs(lattice: np.ndarray, cart: np.ndarray, r: float) -> tuple[np.ndarray, ...]:
    """(centre, neighbour, image, distance) of every atom pair within `r`, periodic images included;
    each atom's zero-distance pair with itself is among them (pymatgen's compiled neighbour search)."""
    cart = np.ascontiguousarray(cart, dtype=float)
    lattice = np.ascontiguousarray(lattice, dtype=float)
    return find_points_in_spheres(cart, cart, r=r, pbc=np.array([1, 1, 1], dtype=np.int64), lattice=lattice, tol=1e-8)


def min_distance(lattice: np.ndarray, cart: np.ndarray, r: float) -> float:
    """Smallest interatomic distance below `r` (periodic images included), or inf if none."""
    if len(cart) == 0:
        return float("inf")
    i, j, images, d = periodic_pairs(lattice, cart, r)
    self_pair = (i == j) & np.all(images == 0, axis=1)
    d = d[~self_pair]
    return float(d.min()) if len(d) else float("inf")


def check_crystal(c: Crystal, max_atoms: int, max_z: int, min_dist: float) -> str | None:
    """Return why a structure cannot be used, or None when it is fine."""
    n = len(c.numbers)
    if n == 0:
        return "no atoms"
    if n > max_atoms:
        return f"too many atoms ({n} > max_atoms {max_atoms})"
    if c.lattice.shape != (3, 3) or not np.all(np.isfinite(c.lattice)):
        return "invalid lattice"
    if abs(np.linalg.det(c.lattice)) < 1e-3:
        return "degenerate lattice (zero volume)"
    if not np.all(np.isfinite(c.frac)):
        return "non-finite coordinates"
    if c.numbers.min() < 1 or c.numbers.max() > max_z:
        return f"unsupported element (Z outside 1..{max_z})"
    if min_dist > 0 and min_distance(c.lattice, c.cart, min_dist) < min_dist:
        return f"overlapping atoms (closer than {min_dist} Å)"
    return None


def to_arrow(crystals: list[Crystal], label_columns: list[str], source: str) -> pa.Table:
    meta_cols = [m for m in META_COLUMNS if any(m in c.meta for c in crystals)]
    data: dict[str, list] = {
        "id": [c.id for c in crystals],
        "formula": [c.formula for c in crystals],
        "lattice": [c.lattice.astype(float).ravel().tolist() for c in crystals],
        "numbers": [c.numbers.astype(int).tolist() for c in crystals],
        "frac_coords": [c.frac.astype(float).ravel().tolist() for c in crystals],
        "source": [source] * len(crystals),
    }
    for col in label_columns:
        data[col] = [c.labels.get(col) for c in crystals]
    for col in meta_cols:
        data[col] = [c.meta.get(col) for c in crystals]
    schema = [
        ("id", pa.string()),
        ("formula", pa.string()),
        ("lattice", pa.list_(pa.float64(), 9)),
        ("numbers", pa.list_(pa.int16())),
        ("frac_coords", pa.list_(pa.float64())),
        ("source", pa.string()),
    ]
    text = {col for col in label_columns if any(isinstance(v, str) for v in data[col])}  # a labels CSV's text column
    schema += [(col, pa.string() if col in text else pa.float64()) for col in label_columns]
    schema += [(col, pa.string()) for col in meta_cols]
    return pa.table(data, schema=pa.schema(schema))


def write_table(table: pa.Table, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pq.read_table(path, columns=columns).to_pandas()


def crystals_from_table(df: pd.DataFrame) -> list[Crystal]:
    """Rows of a structure table back to `Crystal`s (labels and metadata are not carried)."""
    out = []
    for id_, lat, num, frac in zip(df["id"], df["lattice"], df["numbers"], df["frac_coords"], strict=True):
        out.append(
            Crystal(
                id=id_,
                lattice=np.asarray(lat, dtype=float).reshape(3, 3),
                numbers=np.asarray(num, dtype=np.int64),
                frac=np.asarray(frac, dtype=float).reshape(-1, 3),
            )
        )
    return out


def rejections_table(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {"id": [r[0] for r in rows], "reason": [r[1] for r in rows]},
        schema=pa.schema([("id", pa.string()), ("reason", pa.string())]),
    )
