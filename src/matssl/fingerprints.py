"""Per-atom local-environment fingerprints: the targets of fingerprint pretraining and probe baselines.

Element-aware (what Jia, Govil, Ramprasad and Fung 2025 regress), each of a fixed length whatever the
elements present:

- `wacsf`: weighted atom-centred symmetry functions (Gastegger et al., J. Chem. Phys. 148, 241709, 2018).
  Radial terms G1, G2 sum over neighbours j with the weight w(Z_j); angular terms G4 sum over neighbour
  pairs (j, k) with w(Z_j) w(Z_k). Computed with dscribe's species-resolved ACSF over the crystal's own
  elements, contracted with the weights: sum_s w_s G_s and sum_{s<=t} w_s w_t G_st.
- `soap_groups`: dscribe SOAP over a few element groups used as pseudo-species (`groups`: the periodic-table
  block s/p/d/f, or bins of Pauling electronegativity), so the power spectrum sees which kind of element
  surrounds an atom at the cost of (G n_max)(G n_max + 1)/2 (l_max + 1) values.
- `ead`: the embedded atom density (Zhang, Hu, Jiang, J. Phys. Chem. Lett. 10, 4962, 2019), written here
  from its definition (no library computes it): for each Gaussian (alpha, r_s) and angular order L,
  rho_L = sum_{lx+ly+lz=L} L!/(lx! ly! lz!) (sum_j w(Z_j) x^lx y^ly z^lz exp(-alpha (r - r_s)^2) f_c(r))^2
  over neighbours j at displacement (x, y, z), |.| = r < r_cut, f_c(r) = (cos(pi r / r_cut) + 1) / 2.

Geometry only (the ablation: every atom is the same species, so the target says nothing of chemistry):
`acsf_geometry` (the same symmetry functions as `wacsf`, every weight 1) and `soap_geometry`.

The weight w(Z) (`weight`) is the atomic number (Gastegger's choice) or the Pauling electronegativity.
With the defaults the vectors have wacsf 37, soap_groups 390, ead 40, acsf_geometry 37, soap_geometry 147
values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from itertools import combinations_with_replacement

import numpy as np
import pyarrow as pa
from ase import Atoms

from matssl.config import FingerprintConfig
from matssl.elements import block, pauling
from matssl.table import Crystal, periodic_pairs

LABELS = {
    "wacsf": "wACSF",
    "soap_groups": "SOAP (element groups)",
    "ead": "EAD",
    "acsf_geometry": "ACSF (geometry only)",
    "soap_geometry": "SOAP (geometry only)",
}
ELEMENT_AWARE = ("wacsf", "soap_groups", "ead")


def element_weight(z: int, weight: str) -> float:
    """w(Z) of wACSF and EAD."""
    return float(z) if weight == "z" else pauling(z)


@cache
def element_group(z: int, scheme: str, edges: tuple[float, ...]) -> int:
    """The pseudo-species of element Z for `soap_groups`: block s/p/d/f (0-3), or the electronegativity bin
    (0 below edges[0], ..., len(edges) at or above the last edge)."""
    if scheme == "block":
        return block(z)
    return int(np.searchsorted(edges, pauling(z), side="right"))


def n_groups(cfg: FingerprintConfig) -> int:
    return 4 if cfg.groups == "block" else len(cfg.group_edges) + 1


def dims(cfg: FingerprintConfig) -> dict[str, int]:
    """Values per atom of each configured kind."""
    acsf = 1 + len(cfg.acsf_g2_eta) * len(cfg.acsf_g2_rs) + len(cfg.acsf_g4)
    gn = n_groups(cfg) * cfg.soap_groups_n_max
    out = {
        "wacsf": acsf,
        "acsf_geometry": acsf,
        "ead": len(cfg.ead_rs) * (cfg.ead_l_max + 1),
        "soap_groups": gn * (gn + 1) // 2 * (cfg.soap_groups_l_max + 1),
        "soap_geometry": cfg.soap_n_max * (cfg.soap_n_max + 1) // 2 * (cfg.soap_l_max + 1),
    }
    return {k: out[k] for k in cfg.kinds}


# --------------------------------------------------------------------------- one crystal
class Calculator:
    """Every configured kind for one crystal at a time (dscribe objects built once, per element set for wACSF)."""

    def __init__(self, cfg: FingerprintConfig):
        from dscribe.descriptors import SOAP

        self.cfg = cfg
        self.g2 = [[eta, rs] for eta in cfg.acsf_g2_eta for rs in cfg.acsf_g2_rs]
        self.g4 = [list(t) for t in cfg.acsf_g4]
        self.soap = SOAP(
            species=[1], r_cut=cfg.r_cut, n_max=cfg.soap_n_max, l_max=cfg.soap_l_max, sigma=cfg.soap_sigma, periodic=True
        )
        self.soap_groups = SOAP(
            species=list(range(1, n_groups(cfg) + 1)),
            r_cut=cfg.r_cut,
            n_max=cfg.soap_groups_n_max,
            l_max=cfg.soap_groups_l_max,
            sigma=cfg.soap_sigma,
            periodic=True,
        )
        self._acsf: dict[tuple[int, ...], object] = {}

    def acsf(self, species: tuple[int, ...]):
        """dscribe's ACSF resolved over `species` (cached: a pool has a few thousand element sets)."""
        if species not in self._acsf:
            from dscribe.descriptors import ACSF

            if len(self._acsf) > 4096:
                self._acsf.clear()
            self._acsf[species] = ACSF(
                species=list(species), r_cut=self.cfg.r_cut, g2_params=self.g2, g4_params=self.g4, periodic=True
            )
        return self._acsf[species]

    def __call__(self, c: Crystal) -> dict[str, np.ndarray]:
        cfg, n = self.cfg, len(c.numbers)

        def atoms(numbers) -> Atoms:
            return Atoms(numbers=numbers, cell=c.lattice, scaled_positions=c.frac, pbc=True)

        out: dict[str, np.ndarray] = {}
        for kind in cfg.kinds:
            if kind == "acsf_geometry":
                x = self.acsf((1,)).create(atoms(np.ones(n, int)))
            elif kind == "soap_geometry":
                x = self.soap.create(atoms(np.ones(n, int)))
            elif kind == "wacsf":
                x = self._wacsf(c, atoms(c.numbers))
            elif kind == "soap_groups":
                edges = tuple(cfg.group_edges)
                x = self.soap_groups.create(atoms([element_group(int(z), cfg.groups, edges) + 1 for z in c.numbers]))
            else:
                x = ead(c, cfg)
            out[kind] = np.asarray(x, dtype=np.float32).reshape(n, -1)
        return out

    def _wacsf(self, c: Crystal, a: Atoms) -> np.ndarray:
        species = tuple(sorted(set(c.numbers.tolist())))
        x = self.acsf(species).create(a).reshape(len(c.numbers), -1)
        w = np.array([element_weight(z, self.cfg.weight) for z in species])
        n_s, n_rad, n_ang = len(species), 1 + len(self.g2), len(self.g4)
        # dscribe's layout: [G1, G2...] per species (sorted by Z), then [G4...] per species pair s <= t
        radial = x[:, : n_s * n_rad].reshape(-1, n_s, n_rad)
        angular = x[:, n_s * n_rad :].reshape(-1, n_s * (n_s + 1) // 2, n_ang)
        pair_w = np.array([w[s] * w[t] for s, t in combinations_with_replacement(range(n_s), 2)])
        return np.concatenate([np.einsum("asr,s->ar", radial, w), np.einsum("apr,p->ar", angular, pair_w)], axis=1)


def ead(c: Crystal, cfg: FingerprintConfig) -> np.ndarray:
    """The embedded atom density of every atom: [atoms, len(ead_rs) * (ead_l_max + 1)], L-major."""
    from scipy.sparse import csr_matrix

    lattice = np.ascontiguousarray(c.lattice, dtype=float)
    cart = np.ascontiguousarray(c.frac @ lattice)
    i, j, img, r = periodic_pairs(lattice, cart, cfg.r_cut)
    keep = r > 1e-8
    i, j, img, r = i[keep], j[keep], img[keep], r[keep]
    d = cart[j] + img @ lattice - cart[i]
    n = len(c.numbers)
    w = np.array([element_weight(int(z), cfg.weight) for z in c.numbers])
    rs = np.asarray(cfg.ead_rs)
    radial = np.exp(-cfg.ead_alpha * (r[:, None] - rs) ** 2) * (0.5 * (np.cos(np.pi * r / cfg.r_cut) + 1) * w[j])[:, None]
    to_atom = csr_matrix((np.ones(len(i)), (i, np.arange(len(i)))), shape=(n, len(i)))
    out = []
    for L in range(cfg.ead_l_max + 1):
        terms = [(lx, ly, L - lx - ly) for lx in range(L + 1) for ly in range(L - lx + 1)]
        coef = np.array([math.factorial(L) / (math.factorial(a) * math.factorial(b) * math.factorial(c)) for a, b, c in terms])
        mono = np.stack([d[:, 0] ** a * d[:, 1] ** b * d[:, 2] ** c for a, b, c in terms], axis=1)  # [pairs, terms]
        per_pair = (radial[:, :, None] * mono[:, None, :]).reshape(len(i), len(rs) * len(terms))
        summed = (to_atom @ per_pair).reshape(n, len(rs), len(terms))
        out.append((summed**2 * coef).sum(-1))
    return np.concatenate(out, axis=1)


# --------------------------------------------------------------------------- many crystals, streamed
def schema(cfg: FingerprintConfig) -> pa.Schema:
    fields = [pa.field("id", pa.string()), pa.field("site", pa.int32()), pa.field("z", pa.int16())]
    return pa.schema(fields + [pa.field(k, pa.list_(pa.float32(), n)) for k, n in dims(cfg).items()])


def batch(crystals: list[Crystal], cfg: FingerprintConfig, calc: Calculator | None = None) -> pa.RecordBatch:
    """One row per atom of `crystals`: `id`, `site`, `z` and one fixed-size float32 list column per kind."""
    calc = calc or Calculator(cfg)
    per = [calc(c) for c in crystals]
    sch = schema(cfg)
    arrays = [
        pa.array([c.id for c in crystals for _ in c.numbers], pa.string()),
        pa.array([s for c in crystals for s in range(len(c.numbers))], pa.int32()),
        pa.array([int(z) for c in crystals for z in c.numbers], pa.int16()),
    ]
    for k, n in dims(cfg).items():
        mat = np.concatenate([p[k] for p in per]) if per else np.zeros((0, n), np.float32)
        arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(mat.ravel()), n))
    return pa.RecordBatch.from_arrays(arrays, schema=sch)


_worker: Calculator | None = None


def _batch_in_worker(args: tuple[list[Crystal], FingerprintConfig]) -> pa.RecordBatch:
    global _worker
    crystals, cfg = args
    if _worker is None:
        _worker = Calculator(cfg)
    return batch(crystals, cfg, _worker)


def stream(
    crystals: list[Crystal],
    cfg: FingerprintConfig,
    processes: int = 1,
    chunk: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of `chunk` crystals each, in input order, computed by `processes` worker processes."""
    chunks = [crystals[k : k + chunk] for k in range(0, len(crystals), chunk)]
    done = 0

    def report(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        nonlocal done
        for part, b in zip(chunks, batches, strict=True):
            done += len(part)
            if progress is not None:
                progress(done, b.num_rows)
            yield b

    if processes <= 1 or len(chunks) <= 1:
        calc = Calculator(cfg)
        yield from report(batch(part, cfg, calc) for part in chunks)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(processes) as pool:
        yield from report(pool.imap(_batch_in_worker, [(part, cfg) for part in chunks]))


def compute(crystals: list[Crystal], cfg: FingerprintConfig) -> pa.Table:
    """Every crystal's fingerprints as one table (tests and small sets; the stage streams)."""
    return pa.Table.from_batches(list(stream(crystals, cfg)), schema=schema(cfg))


def matrix(table: pa.Table, kind: str) -> np.ndarray:
    """The [atoms, dims] float32 matrix of one descriptor column."""
    col = table.column(kind).combine_chunks()
    return col.values.to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
