"""Element-aware and geometry-only fingerprints against their definitions, computed by hand."""

import itertools
import math

import numpy as np
import pyarrow as pa
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from matssl import fingerprints as fp
from matssl.config import ConfigError, FingerprintConfig
from matssl.table import Crystal
from matssl.validate import parse_config

KINDS = ["wacsf", "soap_groups", "ead", "acsf_geometry", "soap_geometry"]
SMALL = {"r_cut": 4.5, "soap_n_max": 3, "soap_l_max": 3, "soap_groups_n_max": 2, "soap_groups_l_max": 3}


def cfg(**kw) -> FingerprintConfig:
    return FingerprintConfig(**{"kinds": KINDS, **SMALL, **kw})


def one(c: Crystal, config: FingerprintConfig) -> dict[str, np.ndarray]:
    return fp.Calculator(config)(c)


def with_numbers(c: Crystal, numbers) -> Crystal:
    return Crystal(c.id, c.lattice, np.asarray(numbers), c.frac)


def neighbours(c: Crystal, r_cut: float):
    """ASE's neighbour list (not the one the code uses): centre, neighbour, displacement."""
    atoms = Atoms(numbers=c.numbers, cell=c.lattice, scaled_positions=c.frac, pbc=True)
    return neighbor_list("ijD", atoms, r_cut)


def fc(r, r_cut):
    return 0.5 * (np.cos(np.pi * r / r_cut) + 1) * (r < r_cut)


@pytest.fixture
def pair_cell() -> Crystal:
    """Two atoms (O and Na) in a small oblique cell."""
    lattice = np.array([[3.1, 0.0, 0.0], [0.4, 2.9, 0.0], [0.3, 0.5, 3.3]])
    return Crystal("pair", lattice, np.array([8, 11]), np.array([[0.0, 0.0, 0.0], [0.45, 0.55, 0.4]]))


def test_wacsf_equals_its_formula_on_a_two_atom_cell(pair_cell):
    config = cfg(kinds=["wacsf"])
    got = one(pair_cell, config)["wacsf"]
    i, j, d = neighbours(pair_cell, config.r_cut)
    w = pair_cell.numbers.astype(float)  # weight: Z
    for a in range(2):
        dj = d[i == a]
        wj = w[j[i == a]]
        r = np.linalg.norm(dj, axis=1)
        expect = [np.sum(wj * fc(r, config.r_cut))]
        expect += [
            np.sum(wj * np.exp(-eta * (r - rs) ** 2) * fc(r, config.r_cut))
            for eta in config.acsf_g2_eta
            for rs in config.acsf_g2_rs
        ]
        for eta, zeta, lam in config.acsf_g4:
            total = 0.0
            for p, q in itertools.combinations(range(len(r)), 2):  # each unordered neighbour pair once
                rjk = np.linalg.norm(dj[p] - dj[q])
                cos = dj[p] @ dj[q] / (r[p] * r[q])
                total += (
                    wj[p]
                    * wj[q]
                    * (1 + lam * cos) ** zeta
                    * np.exp(-eta * (r[p] ** 2 + r[q] ** 2 + rjk**2))
                    * fc(r[p], config.r_cut)
                    * fc(r[q], config.r_cut)
                    * fc(rjk, config.r_cut)
                )
            expect.append(2 ** (1 - zeta) * total)
        np.testing.assert_allclose(got[a], expect, rtol=2e-5, atol=1e-5)


def test_ead_equals_its_formula_on_a_two_atom_cell(pair_cell):
    # sum over (lx, ly, lz) of the multinomial-weighted squares == sum over neighbour pairs of (d_j . d_k)^L
    config = cfg(kinds=["ead"], weight="electronegativity")
    got = one(pair_cell, config)["ead"].reshape(2, config.ead_l_max + 1, len(config.ead_rs))
    i, j, d = neighbours(pair_cell, config.r_cut)
    w = np.array([3.44, 0.93])  # Pauling: O, Na
    for a in range(2):
        dj, wj = d[i == a], w[j[i == a]]
        r = np.linalg.norm(dj, axis=1)
        for k, rs in enumerate(config.ead_rs):
            radial = wj * np.exp(-config.ead_alpha * (r - rs) ** 2) * fc(r, config.r_cut)
            for L in range(config.ead_l_max + 1):
                expect = np.sum(np.outer(radial, radial) * (dj @ dj.T) ** L)
                assert got[a, L, k] == pytest.approx(expect, rel=1e-4, abs=1e-3)


def test_wacsf_of_one_element_is_the_geometry_scaled_by_its_weight(silicon):
    for weight, w in (("z", 14.0), ("electronegativity", 1.9)):
        config = cfg(kinds=["wacsf", "acsf_geometry"], weight=weight)
        out = one(silicon, config)
        n_rad = 1 + len(config.acsf_g2_eta) * len(config.acsf_g2_rs)
        np.testing.assert_allclose(out["wacsf"][:, :n_rad], w * out["acsf_geometry"][:, :n_rad], rtol=1e-5)
        np.testing.assert_allclose(out["wacsf"][:, n_rad:], w**2 * out["acsf_geometry"][:, n_rad:], rtol=1e-5, atol=1e-6)


def test_swapping_na_and_cl_in_rock_salt(nacl):
    """Geometry-only fingerprints do not change; wACSF's radial terms change as the weights say: with G_same the
    (geometry-only) terms of an atom's own sublattice and G_other those of the other, an atom of element A whose
    other sublattice is element B has w_A G_same + w_B G_other."""
    config = cfg()
    swapped = with_numbers(nacl, np.where(nacl.numbers == 11, 17, 11))
    before, after = one(nacl, config), one(swapped, config)
    for kind in ("acsf_geometry", "soap_geometry"):
        np.testing.assert_allclose(before[kind], after[kind], rtol=1e-6, atol=1e-7)
    for kind in fp.ELEMENT_AWARE:
        assert not np.allclose(before[kind], after[kind], rtol=1e-3), kind

    n_rad = 1 + len(config.acsf_g2_eta) * len(config.acsf_g2_rs)
    g_full = before["acsf_geometry"][:, :n_rad]
    na = nacl.numbers == 11
    sublattice = Crystal("na", nacl.lattice, nacl.numbers[na], nacl.frac[na])  # fcc: every site alike
    g_same = one(sublattice, cfg(kinds=["acsf_geometry"]))["acsf_geometry"][0, :n_rad]
    g_other = g_full - g_same
    for numbers, out in ((nacl.numbers, before), (swapped.numbers, after)):
        for a, z in enumerate(numbers):
            other = 28 - z  # Na (11) <-> Cl (17)
            np.testing.assert_allclose(out["wacsf"][a, :n_rad], z * g_same + other * g_other[a], rtol=1e-5)


def test_soap_groups_see_the_group_not_the_element(nacl):
    # Na and K are both s-block: the block grouping cannot tell NaCl from KCl at the same geometry (wACSF can)
    config = cfg(kinds=["soap_groups", "wacsf"])
    kcl = with_numbers(nacl, np.where(nacl.numbers == 11, 19, 17))
    a, b = one(nacl, config), one(kcl, config)
    np.testing.assert_allclose(a["soap_groups"], b["soap_groups"], rtol=1e-6)
    assert not np.allclose(a["wacsf"], b["wacsf"])


def test_element_groups():
    edges = (1.3, 1.9, 2.6)
    assert [fp.element_group(z, "block", edges) for z in (11, 17, 26, 58)] == [0, 1, 2, 3]  # Na s, Cl p, Fe d, Ce f
    assert [fp.element_group(z, "electronegativity", edges) for z in (11, 26, 16, 8)] == [0, 1, 2, 3]  # 0.93 1.83 2.58 3.44
    assert fp.element_weight(2, "electronegativity") > fp.element_weight(9, "electronegativity")  # He: Allen scale
    assert all(math.isfinite(fp.element_weight(z, "electronegativity")) for z in range(1, 101))


def test_invariant_to_rotation_translation_and_atom_order(triclinic):
    config = cfg()
    base = one(triclinic, config)
    theta = 0.7
    rot = np.array([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
    rot = rot @ np.array([[1, 0, 0], [0, math.cos(1.1), -math.sin(1.1)], [0, math.sin(1.1), math.cos(1.1)]])
    order = np.array([2, 0, 3, 1])
    variants = {
        "rotated": (Crystal("r", triclinic.lattice @ rot.T, triclinic.numbers, triclinic.frac), np.arange(4)),
        "translated": (
            Crystal("t", triclinic.lattice, triclinic.numbers, (triclinic.frac + [0.31, 0.77, 0.12]) % 1),
            np.arange(4),
        ),
        "reordered": (Crystal("o", triclinic.lattice, triclinic.numbers[order], triclinic.frac[order]), order),
    }
    for name, (c, perm) in variants.items():
        out = one(c, config)
        for kind in KINDS:
            scale = np.abs(base[kind]).max()
            np.testing.assert_allclose(out[kind], base[kind][perm], rtol=1e-4, atol=1e-5 * scale, err_msg=f"{name} {kind}")


def test_length_does_not_depend_on_the_elements(nacl, silicon, triclinic):
    four = Crystal("four", triclinic.lattice, np.array([3, 26, 8, 56]), triclinic.frac)
    lonely = Crystal("lonely", np.eye(3) * 9.0, np.array([6]), np.zeros((1, 3)))  # no neighbour within r_cut
    config = cfg()
    for c in (nacl, silicon, triclinic, four, lonely):
        out = one(c, config)
        assert {k: v.shape for k, v in out.items()} == {k: (len(c.numbers), n) for k, n in fp.dims(config).items()}
    assert fp.dims(FingerprintConfig()) == {"wacsf": 37, "soap_groups": 390, "ead": 40, "acsf_geometry": 37, "soap_geometry": 147}


def test_worker_processes_stream_the_same_table(nacl, silicon, triclinic):
    crystals = [Crystal(f"{c.id}{k}", c.lattice, c.numbers, c.frac) for k in range(3) for c in (nacl, silicon, triclinic)]
    config = cfg()
    one_process = pa.Table.from_batches(list(fp.stream(crystals, config, processes=1, chunk=2)))
    two = pa.Table.from_batches(list(fp.stream(crystals, config, processes=2, chunk=2)))
    assert one_process.equals(two)
    assert one_process.num_rows == sum(len(c.numbers) for c in crystals)
    assert one_process.column("id").to_pylist()[:8] == ["nacl0"] * 8


def test_descriptor_must_be_a_computed_kind(tiny_demo):
    from tests.workflow import tiny_config

    raw = tiny_config(tiny_demo)
    raw["pretrain"]["methods"]["fingerprint"]["params"] = {"descriptor": "soap"}
    with pytest.raises(ConfigError, match="descriptor: 'soap' is now 'soap_geometry'"):
        parse_config(raw)
    raw["pretrain"]["methods"]["fingerprint"]["params"] = {"descriptor": "ead"}
    raw["fingerprints"]["kinds"] = ["wacsf"]
    with pytest.raises(ConfigError, match="descriptor 'ead' is not one of fingerprints.kinds"):
        parse_config(raw)
