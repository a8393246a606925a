"""Per-atom local-environment fingerprints (dscribe ACSF and SOAP).

Both are computed species-agnostic: every atom is given the same species, so the descriptor encodes
the geometry of the neighbourhood and its length does not depend on how many elements the dataset has
(SOAP over 80 species would have thousands of dimensions). With the defaults the ACSF vector has
1 + 7*4 + 8 = 37 entries and SOAP n_max(n_max+1)/2 * (l_max+1) = 147. The element identity is what the
encoder gets as input, so it is not lost to the model, only kept out of the regression target.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from ase import Atoms

from matssl.config import FingerprintConfig
from matssl.table import Crystal


def _descriptors(cfg: FingerprintConfig) -> dict[str, object]:
    from dscribe.descriptors import ACSF, SOAP

    out: dict[str, object] = {}
    if "acsf" in cfg.kinds:
        out["acsf"] = ACSF(
            species=["H"],
            r_cut=cfg.r_cut,
            g2_params=[[eta, rs] for eta in cfg.acsf_g2_eta for rs in cfg.acsf_g2_rs],
            g4_params=[list(t) for t in cfg.acsf_g4],
            periodic=True,
        )
    if "soap" in cfg.kinds:
        out["soap"] = SOAP(
            species=["H"], r_cut=cfg.r_cut, n_max=cfg.soap_n_max, l_max=cfg.soap_l_max, sigma=cfg.soap_sigma, periodic=True
        )
    return out


def compute(crystals: list[Crystal], cfg: FingerprintConfig, progress=None) -> pa.Table:
    """One row per atom: `id`, `site`, `z` and one fixed-size float32 list column per descriptor."""
    desc = _descriptors(cfg)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in desc}
    ids, sites, zs = [], [], []
    for n, c in enumerate(crystals):
        atoms = Atoms(numbers=np.ones(len(c.numbers), dtype=int), cell=c.lattice, scaled_positions=c.frac, pbc=True)
        for k, d in desc.items():
            cols[k].append(np.asarray(d.create(atoms), dtype=np.float32).reshape(len(c.numbers), -1))
        ids.extend([c.id] * len(c.numbers))
        sites.extend(range(len(c.numbers)))
        zs.extend(c.numbers.tolist())
        if progress is not None:
            progress(n + 1, len(crystals), len(c.numbers))
    arrays = {"id": pa.array(ids, pa.string()), "site": pa.array(sites, pa.int32()), "z": pa.array(zs, pa.int16())}
    for k, blocks in cols.items():
        mat = np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32)
        arrays[k] = pa.FixedSizeListArray.from_arrays(pa.array(mat.ravel()), mat.shape[1])
    return pa.table(arrays)


def matrix(table: pa.Table, kind: str) -> np.ndarray:
    """The [atoms, dims] float32 matrix of one descriptor column."""
    col = table.column(kind).combine_chunks()
    return col.values.to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
