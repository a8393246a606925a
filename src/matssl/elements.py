"""Element look-ups in one place: pymatgen's periodic table, each element read once per process (cached).

Used by ingest (symbols <-> atomic numbers), the augmentations (periodic-table column and period), the
fingerprints (Pauling electronegativity, s/p/d/f block), the objectives (column, period, symbols) and the probes'
Magpie-style statistics (element properties).
"""

from __future__ import annotations

import math
import warnings
from functools import cache

import numpy as np

BLOCKS = "spdf"  # a block's index: its position here
F_BLOCK = frozenset(range(57, 72)) | frozenset(range(89, 104))  # La-Lu, Ac-Lr

# Pauling electronegativity is undefined for He, Ne and Ar; they get their Allen-scale values (Allen 1989),
# which rank them above fluorine as the noble gases' ionisation energies do.
MISSING_PAULING = {2: 4.16, 10: 4.79, 18: 3.24}


@cache
def element(z: int):
    """pymatgen's Element of atomic number `z`."""
    from pymatgen.core.periodic_table import Element

    return Element.from_Z(z)


def symbol(z: int) -> str:
    return element(z).symbol


@cache
def atomic_number(symbol: str) -> int:
    """The atomic number of an element symbol ('Fe' -> 26); ValueError for one pymatgen does not know."""
    from pymatgen.core.periodic_table import Element

    return int(Element(symbol).Z)


@cache
def column(z: int) -> int:
    """Periodic-table column 1..18, with the f-block (La-Lu, Ac-Lr) as its own column 19."""
    return 19 if z in F_BLOCK else int(element(z).group)


@cache
def period(z: int) -> int:
    return int(element(z).row)


@cache
def block(z: int) -> int:
    """The block s, p, d, f as 0-3."""
    return BLOCKS.index(element(z).block)


@cache
def pauling(z: int) -> float:
    """Pauling electronegativity (MISSING_PAULING's Allen values for He, Ne, Ar); ValueError where there is none."""
    if z in MISSING_PAULING:
        return MISSING_PAULING[z]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = element(z).X
    if not math.isfinite(x):
        raise ValueError(f"no electronegativity for Z={z}")
    return float(x)


@cache
def property_table(names: tuple[str, ...], max_z: int = 118) -> np.ndarray:
    """[max_z + 1, len(names)] element properties (pymatgen's attributes; `block` as 0-3), row 0 unused; a value
    pymatgen lacks is the mean of the elements that have it."""
    table = np.full((max_z + 1, len(names)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in range(1, max_z + 1):
            el = element(z)
            for k, name in enumerate(names):
                try:
                    v = block(z) if name == "block" else getattr(el, name)
                    table[z, k] = float(v) if v is not None else np.nan
                except (AttributeError, TypeError, ValueError):
                    pass
    means = np.nanmean(table[1:], axis=0)
    return np.where(np.isnan(table), means, table)
