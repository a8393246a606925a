"""Crystal augmentations (CrystalCLR) and the periodic-table columns they use.

Each function takes a `Crystal` and a NumPy generator and returns a new `Crystal`. `make_views`
applies every enabled augmentation to each view independently with probability p. Views are seeded
per structure (from the seed and the structure id), so the result does not depend on order.
"""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np

from matssl.config import AugmentConfig
from matssl.elements import column
from matssl.table import Crystal, min_distance


@cache
def column_members(col: int, max_z: int) -> tuple[int, ...]:
    return tuple(z for z in range(1, max_z + 1) if column(z) == col)


def perturb_sites(c: Crystal, rng: np.random.Generator, fraction: float = 0.5) -> Crystal:
    """Move every site by a distance U(0, fraction * d_min) in a uniformly random direction."""
    d_min = min_distance(c.lattice, c.cart, r=6.0)
    if not np.isfinite(d_min):
        d_min = 1.0
    shift = perturb_shifts(len(c.numbers), rng, 0.0, fraction * d_min)
    frac = (c.cart + shift) @ np.linalg.inv(c.lattice)
    return Crystal(c.id, c.lattice, c.numbers, frac)


def perturb_shifts(n: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """n random vectors with uniformly random directions and lengths U(lo, hi)."""
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return direction * rng.uniform(lo, hi, size=(n, 1))


def strain(c: Crystal, rng: np.random.Generator, max_strain: float = 0.05) -> Crystal:
    """Stretch each lattice vector by 1 + U(0, max_strain), independently; the angles are kept."""
    factors = 1.0 + rng.uniform(0.0, max_strain, size=3)
    return Crystal(c.id, c.lattice * factors[:, None], c.numbers, c.frac)


def column_replace(c: Crystal, rng: np.random.Generator, max_z: int = 100) -> Crystal:
    """Swap one random site's element for another element of the same periodic-table column."""
    site = int(rng.integers(len(c.numbers)))
    z = int(c.numbers[site])
    options = [m for m in column_members(column(z), max_z) if m != z]
    if not options:
        return c
    numbers = c.numbers.copy()
    numbers[site] = options[int(rng.integers(len(options)))]
    return Crystal(c.id, c.lattice, numbers, c.frac)


def supercell(c: Crystal, n: int | tuple[int, int, int] = 3) -> Crystal:
    """An n x n x n (or n1 x n2 x n3) supercell (lattice vectors scaled, so the angles and the density are kept)."""
    m = np.broadcast_to(np.asarray(n, dtype=int), 3)
    shifts = np.array(np.meshgrid(*(np.arange(k) for k in m), indexing="ij"), dtype=float).reshape(3, -1).T
    frac = ((c.frac[None, :, :] + shifts[:, None, :]) / m).reshape(-1, 3)
    return Crystal(c.id, c.lattice * m[:, None], np.tile(c.numbers, len(shifts)), frac)


def structure_rng(seed: int, id_: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(id_.encode()), *extra])


def make_views(c: Crystal, cfg: AugmentConfig, max_z: int) -> list[Crystal]:
    rng = structure_rng(cfg.seed, c.id)
    views = []
    for k in range(cfg.n_views):
        v = c
        if cfg.supercell and rng.random() < cfg.probability:
            v = supercell(v)
        if cfg.strain and rng.random() < cfg.probability:
            v = strain(v, rng, cfg.max_strain)
        if cfg.perturb and rng.random() < cfg.probability:
            v = perturb_sites(v, rng, cfg.perturb_fraction)
        if cfg.column_replace and rng.random() < cfg.probability:
            v = column_replace(v, rng, max_z)
        views.append(Crystal(f"{c.id}#v{k}", v.lattice, v.numbers, v.frac, meta={"parent": c.id}))
    return views
