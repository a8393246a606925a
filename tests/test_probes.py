"""Probe features and models: hand-checked values, and scalers that never see test rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from matssl.probes import ELEMENT_PROPERTIES, fit_rows, magpie_features, make_model, mean_pooled, sine_coulomb_eigenvalues


def test_sine_coulomb_matrix_by_hand():
    a = 5.64
    lattice = np.array([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])  # rock salt, primitive cell
    eig = sine_coulomb_eigenvalues(lattice, np.array([11, 17]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]))
    # sin^2(pi/2) = 1 in every direction: the pair "distance" is |a1 + a2 + a3| = a sqrt(3)
    m = np.array([[0.5 * 11**2.4, 11 * 17 / (a * 3**0.5)], [11 * 17 / (a * 3**0.5), 0.5 * 17**2.4]])
    assert eig == pytest.approx(sorted(np.linalg.eigvalsh(m), key=lambda v: -abs(v)))
    assert eig[0] == pytest.approx(450.0, abs=0.5)


def test_magpie_statistics_of_nacl():
    f = magpie_features([np.array([11, 11, 17, 17])])[0]
    k = len(ELEMENT_PROPERTIES)
    z = ELEMENT_PROPERTIES.index("Z")
    assert f[z] == pytest.approx(14.0)  # mean
    assert f[k + z] == pytest.approx(3.0)  # mean absolute deviation
    assert (f[2 * k + z], f[3 * k + z], f[4 * k + z]) == (11, 17, 6)  # min, max, range
    assert f[-1] == 2  # elements
    assert np.isfinite(f).all()


def test_mean_pooling_follows_the_requested_order():
    atoms = pa.table(
        {"id": ["b", "a", "b"], "soap": pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0, 10.0, 20.0, 3.0, 4.0]), 2)}
    )
    assert mean_pooled(atoms, "soap", ["a", "b"]).tolist() == [[10.0, 20.0], [2.0, 3.0]]


@pytest.mark.parametrize("name", ["ridge", "random_forest", "kernel_ridge"])
def test_scalers_are_fitted_on_training_rows_only(name):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)) + 3.0, rng.normal(size=40) - 2.0
    model = make_model(name, 4, 0, 1, 10, len(x)).fit(x, y)
    reg = model.regressor_
    pipeline = reg.best_estimator_ if name == "kernel_ridge" else reg  # the grid search refits on all training rows
    assert pipeline.named_steps["standardscaler"].mean_ == pytest.approx(x.mean(0))
    assert model.transformer_.mean_ == pytest.approx([y.mean()])
    assert np.abs(model.predict(x) - y).mean() < np.abs(y - y.mean()).mean()  # it learned something


def test_kernel_ridge_is_fitted_on_a_bounded_seeded_subsample():
    train = np.arange(100, 300)
    rows = fit_rows(train, "kernel_ridge", cap=50, seed=3)
    assert len(rows) == 50 and set(rows) <= set(train) and np.array_equal(rows, fit_rows(train, "kernel_ridge", 50, 3))
    assert not np.array_equal(rows, fit_rows(train, "kernel_ridge", 50, 4))  # another seed, another sample
    assert np.array_equal(fit_rows(train, "kernel_ridge", 200, 3), train)  # at or below the cap: every row
    assert np.array_equal(fit_rows(train, "ridge", 50, 3), train)  # linear and forest models: every row
