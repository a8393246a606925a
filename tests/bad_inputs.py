"""The bad-input corpus: a folder of structure files and a labels CSV with every kind of trouble that
years of collected CIFs contain, next to valid rows that must all survive.

`EXPECTED` maps each troubled id to the stage that must reject it and the start of its reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from .conftest import demo_slice

N_GOOD = 18

EXPECTED = {
    "malformed": ("ingest", "unparseable file"),
    "empty": ("ingest", "empty file"),
    "no-atoms": ("ingest", "no atoms"),
    "overlapping": ("ingest", "overlapping atoms"),
    "disordered": ("ingest", "disordered site"),
    "superheavy": ("ingest", "unsupported element"),
    "too-big": ("ingest", "too many atoms"),
    "inf-label": ("ingest", "invalid label"),
    "text-label": ("ingest", "invalid label"),
    "twice": ("ingest", "duplicate id"),
    "relabelled": ("ingest", "repeated id in the labels file"),
    "ghost": ("ingest", "label row without a structure file"),
    "isolated": ("graphs", "isolated atom"),
}
# Kept, with no label: usable for pretraining, dropped from the property's folds.
UNLABELLED = ["nan-label", "no-label-row"]

NO_ATOMS_CIF = """data_empty
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
"""

MALFORMED_CIF = """data_broken
_cell_length_a 4.0
_cell_length_b four
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0.0 0.0
Cl1 Cl 0.5 0.5 0.5 0.5
"""

DISORDERED_CIF = """data_disordered
_cell_length_a 4.2
_cell_length_b 4.2
_cell_length_c 4.2
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Fe1 Fe 0.0 0.0 0.0 0.5
Co1 Co 0.0 0.0 0.0 0.5
O1 O 0.5 0.5 0.5 1.0
"""


def write_corpus(folder: Path) -> Path:
    """Write the corpus into `folder` (structures + labels.csv) and return the labels path."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = demo_slice(N_GOOD)
    labels = []
    for k in range(N_GOOD):
        s = Structure.from_dict(raw["structure"][str(k)])
        s.to(filename=str(folder / f"good-{k:02d}.cif"))
        labels.append((f"good-{k:02d}", f"{raw['n'][str(k)]:.6g}"))

    def cif(name: str, s: Structure) -> None:
        s.to(filename=str(folder / f"{name}.cif"))

    rocksalt = Structure(Lattice.cubic(4.6), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    (folder / "malformed.cif").write_text(MALFORMED_CIF)
    (folder / "empty.cif").write_text("")
    (folder / "no-atoms.cif").write_text(NO_ATOMS_CIF)
    cif("overlapping", Structure(Lattice.cubic(4.6), ["Mg", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.55, 0.5, 0.5]]))
    (folder / "disordered.cif").write_text(DISORDERED_CIF)
    cif("superheavy", Structure(Lattice.cubic(5.0), ["Og", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    cif("too-big", rocksalt * (6, 6, 6))  # 432 atoms > ingest.max_atoms (200)
    cif("isolated", Structure(Lattice.cubic(20.0), ["Na"], [[0, 0, 0]]))  # nothing within the cutoff
    for name in ("inf-label", "text-label", "nan-label", "no-label-row", "relabelled"):
        cif(name, rocksalt)
    cif("twice", rocksalt)
    rocksalt.to(filename=str(folder / "twice.vasp"), fmt="poscar")  # the same id from a second file
    labels += [
        ("overlapping", "1.5"),
        ("disordered", "1.5"),
        ("superheavy", "1.5"),
        ("too-big", "1.5"),
        ("isolated", "1.5"),
        ("inf-label", "inf"),
        ("text-label", "high"),
        ("nan-label", "nan"),
        ("relabelled", "1.7"),
        ("relabelled", "1.8"),
        ("twice", "1.5"),
        ("ghost", "2.0"),
    ]
    path = folder / "labels.csv"
    # a text column (notes, class names) that no property uses: kept as text, rejecting nothing
    path.write_text("id,n,note\n" + "".join(f"{i},{v},{'checked by hand' if k % 3 else ''}\n" for k, (i, v) in enumerate(labels)))
    assert np.isfinite([float(v) for _, v in labels[:N_GOOD]]).all()
    return path
