"""A property's target: its values from the column, the model's space and back, the scaling, by hand."""

import numpy as np
import pandas as pd
import pytest

from matssl.config import PropertyConfig
from matssl.target import Scaling, Target


def test_per_atom_and_log1p_round_trip_and_count_atoms_by_hand():
    numbers = pd.Series([[11, 11, 11, 11, 17, 17, 17, 17], [26] * 4 + [8] * 6, [14]])  # NaCl x4, Fe2O3 x2, Si
    assert Target("y", per_atom="cell").atoms(numbers).tolist() == [8, 10, 1]
    assert Target("y", per_atom="formula_unit").atoms(numbers).tolist() == [2, 5, 1]
    assert Target("y").atoms(numbers).tolist() == [1, 1, 1]
    y = np.array([0.0, 3.7, 1250.0])
    for transform in ("none", "log1p"):
        for per_atom in ("none", "cell", "formula_unit"):
            target = Target("y", transform=transform, per_atom=per_atom)
            atoms = target.atoms(numbers)
            np.testing.assert_allclose(target.from_model(target.to_model(y, atoms), atoms), y, rtol=1e-13, atol=0)
    cell = Target("y", transform="log1p", per_atom="cell")
    np.testing.assert_allclose(cell.to_model(y, cell.atoms(numbers)), np.log1p(y / [8, 10, 1]))


def test_values_of_a_column_by_transform_and_kind():
    column = pd.Series([100.0, 0.0, -1.0, np.nan])
    assert Target("y", transform="log10").values(column).tolist()[:1] == [2.0]
    assert Target("y", transform="log10").values(column).isna().tolist() == [False, True, True, True]  # log10 of <= 0
    assert Target("y", transform="log1p").values(column).tolist()[:2] == [100.0, 0.0]  # the column's unit
    assert Target("y", transform="log1p").values(column).isna().tolist() == [False, False, True, True]  # log1p of < 0
    gap = pd.Series([0.0, 1.2, np.nan, 0.0])
    named = Target("gap", kind="classification", threshold=0.0).values(gap)
    assert named.tolist()[:2] == ["<= 0", "> 0"] and pd.isna(named[2])
    assert Target("c", kind="classification").values(pd.Series([1.0, 0.0, True])).tolist() == ["1", "0", "True"]


def test_a_target_is_the_configs_and_its_stage_parameters():
    prop = PropertyConfig(dataset="d", column="k", transform="log1p", per_atom="cell", unit="GPa")
    target = Target.of(prop.model_dump())
    assert target == Target("k", transform="log1p", per_atom="cell")
    assert Target.of(target.params()) == target  # what a stage is given reads back as the same target
    assert target.params("column", "per_atom") == {"column": "k", "per_atom": "cell"}
    assert Target(transform="log10").unit("GPa") == "log10(GPa)" and Target().unit("eV") == "eV"


def test_scaling_is_median_and_iqr_by_hand():
    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1000.0])  # a long tail: the std (372) would squeeze the bulk to +-0.01
    s = Scaling.of(t)
    assert s.center == 3.5 and s.scale == pytest.approx((4.75 - 2.25) / 1.349)  # numpy's linear percentiles
    assert (s.low, s.high) == (1.0, 1000.0)
    s = Scaling.of(np.array([2.0, 2.0, 2.0, 2.0, 7.0]))  # IQR 0: the std
    assert (s.center, s.scale) == (2.0, pytest.approx(2.0))
    assert Scaling.of(np.array([3.0, 3.0])) == Scaling(3.0, 1.0, 3.0, 3.0)


def test_fit_and_predictions_go_there_and_back():
    target = Target("y", per_atom="cell")
    y, atoms = np.array([2.0, 4.0, 9.0, 40.0]), np.array([1.0, 2.0, 3.0, 4.0])  # per atom: 2, 2, 3, 10
    t, scaling = target.fit(y, atoms)
    assert scaling.center == 2.5 and np.median(t) == 0.0  # centred on the training median per atom
    back, held = target.predictions(t, atoms, scaling)
    np.testing.assert_allclose(back, y)
    assert held == 0
    back, held = target.predictions(np.array([np.nan, 1e6]), atoms[:2], scaling)
    assert back.tolist() == [2.5, 20.0] and held == 2  # NaN: the median (x 1 atom); far: the largest (10 x 2 atoms)
