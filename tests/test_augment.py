import numpy as np
import pytest

from matssl.augment import column_replace, make_views, perturb_sites, strain, supercell
from matssl.config import AugmentConfig
from matssl.elements import column
from matssl.table import min_distance


def angles(lattice):
    a, b, c = lattice
    cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    return np.array([cos(b, c), cos(a, c), cos(a, b)])


@pytest.mark.parametrize("seed", range(10))
def test_column_replace_keeps_group_and_count(triclinic, seed):
    rng = np.random.default_rng(seed)
    out = column_replace(triclinic, rng)
    changed = np.flatnonzero(out.numbers != triclinic.numbers)
    assert len(out.numbers) == len(triclinic.numbers) and len(changed) == 1
    i = changed[0]
    assert column(int(out.numbers[i])) == column(int(triclinic.numbers[i]))


@pytest.mark.parametrize("seed", range(10))
def test_strain_bounds_and_angles(triclinic, seed):
    out = strain(triclinic, np.random.default_rng(seed), 0.05)
    ratio = np.linalg.norm(out.lattice, axis=1) / np.linalg.norm(triclinic.lattice, axis=1)
    assert np.all(ratio >= 1.0) and np.all(ratio <= 1.05)
    np.testing.assert_allclose(angles(out.lattice), angles(triclinic.lattice), atol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_perturbation_bound(triclinic, seed):
    d_min = min_distance(triclinic.lattice, triclinic.cart, 6.0)
    out = perturb_sites(triclinic, np.random.default_rng(seed), 0.5)
    moved = np.linalg.norm(out.cart - triclinic.cart, axis=1)
    assert np.all(moved <= 0.5 * d_min + 1e-9) and moved.max() > 0


def test_supercell_counts_and_density(triclinic):
    out = supercell(triclinic)
    assert len(out.numbers) == 27 * len(triclinic.numbers)
    vol = abs(np.linalg.det(triclinic.lattice))
    assert len(out.numbers) / abs(np.linalg.det(out.lattice)) == pytest.approx(len(triclinic.numbers) / vol)
    np.testing.assert_allclose(angles(out.lattice), angles(triclinic.lattice), atol=1e-12)
    assert min_distance(out.lattice, out.cart, 6.0) == pytest.approx(min_distance(triclinic.lattice, triclinic.cart, 6.0))


def test_views_are_seeded_per_structure(nacl, silicon):
    cfg = AugmentConfig(n_views=3, seed=7)
    a = make_views(nacl, cfg, 100)
    b = make_views(nacl, cfg, 100)
    assert [v.id for v in a] == ["nacl#v0", "nacl#v1", "nacl#v2"]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.frac, y.frac)
        np.testing.assert_array_equal(x.numbers, y.numbers)
    assert any(not np.allclose(v.lattice, nacl.lattice) or not np.allclose(v.frac, nacl.frac) for v in a)
