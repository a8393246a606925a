"""A property's target: what its values are, and the space a model learns them in.

A property (a config's `properties:` entry) reads one label column. Its *values*, in which every metric is computed
and every prediction reported, are the column's numbers (a regression; their log10 with `transform: log10`, as
Matbench's log tasks) or class names (a classification; two classes of a numeric column with a `threshold`).
A model learns a regression in its own space: the value divided by the atoms of the cell or of the reduced formula
unit (`per_atom`), then log1p (`transform: log1p`), then centred on the training median and scaled by the
interquartile range (`Scaling`, fitted on each run's training targets). Predictions go back the same way, held
within the training targets' range. `Target` is that one definition: the splits, finetuning, prediction, the probes
and the report read a property through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd


def class_name(v: object) -> str:
    """A label as a class name: a whole number without its '.0' (1.0 -> '1'), anything else as text."""
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


@dataclass(frozen=True)
class Scaling:
    """How a model's outputs map back to the space its targets were learnt in: times `scale` (and `shrink`) plus `center`, then
    clipped to [low, high], the range of the training targets (a regression; a classification's logits are
    unbounded). The clip keeps a prediction far outside everything the model was trained on from going through an
    inverse transform that explodes it (expm1 of a log1p target: one such structure once gave a run a test MAE of
    92,884 meV/atom on jdft2d, whose labels span 0-1,600). A test or prediction output that is not a number is held
    at the centre, the untrained model's prediction, instead of making every metric NaN (validation is strict:
    `finetune.Regression.val_score`)."""

    center: float = 0.0
    scale: float = 1.0
    low: float = -np.inf
    high: float = np.inf
    shrink: float = 1.0  # a factor toward the centre (config `finetune.small_data.shrink`): 0 predicts the median

    @classmethod
    def of(cls, t: np.ndarray) -> Scaling:
        """The scaling of training targets `t`: centre the median, scale the interquartile range / 1.349 (the standard
        deviation of a normal distribution with that IQR), robust to the long tails of properties such as exfoliation
        energies, where the standard deviation is set by a few outliers (jdft2d: 134 meV/atom, IQR / 1.349: 31).
        Falls back to the standard deviation, then 1, where the IQR is 0; bounds the targets' minimum and maximum."""
        q25, q50, q75 = np.percentile(t, [25, 50, 75])
        return cls(float(q50), float((q75 - q25) / 1.349) or float(np.std(t)) or 1.0, float(np.min(t)), float(np.max(t)))

    def learnt(self, out: np.ndarray) -> np.ndarray:
        """Outputs in the learnt space, unclipped."""
        return np.asarray(out, dtype=float) * (self.shrink * self.scale) + self.center

    def hold(self, learnt: np.ndarray) -> np.ndarray:
        """Outputs in the learnt space held within the training targets' range (NaN at the centre)."""
        return np.clip(np.where(np.isnan(learnt), self.center, learnt), self.low, self.high)

    def n_held(self, learnt: np.ndarray) -> int:
        """How many outputs in the learnt space `hold` changes: outside the range, or NaN."""
        return int((np.isnan(learnt) | (learnt < self.low) | (learnt > self.high)).sum())

    def back(self, out: np.ndarray) -> np.ndarray:
        return self.hold(self.learnt(out))


@dataclass(frozen=True)
class Target:
    """One property's reading of its label column (see the module's docstring). `column` is None where only the
    reading matters (a summary's record of a property keeps no column)."""

    column: str | None = None
    kind: str = "regression"  # or "classification"
    threshold: float | None = None  # a classification of a numeric column: '> t' and '<= t'
    transform: str = "none"  # "log10": the values are the column's log10; "log1p": learnt as log1p
    per_atom: str = "none"  # "cell", "formula_unit": learnt divided by those atoms, predicted multiplied back

    @classmethod
    def of(cls, prop: Mapping[str, Any]) -> Target:
        """The target of a property's config, a stage's parameters or a summary's record (absent fields: defaults)."""
        return cls(**{f.name: prop[f.name] for f in fields(cls) if prop.get(f.name) is not None})

    def params(self, *names: str) -> dict[str, Any]:
        """The fields (all, or `names`) as a stage's parameters: what its key hashes."""
        return {k: v for k, v in asdict(self).items() if not names or k in names}

    @property
    def classification(self) -> bool:
        return self.kind == "classification"

    def values(self, column: pd.Series) -> pd.Series:
        """The property of each structure from its column: floats for a regression (NaN where the transform cannot
        take the value: log10 of <= 0, log1p of < 0), class names for a classification; NaN where missing."""
        if not self.classification:
            y = column.astype(float)
            if self.transform == "log10":
                return np.log10(y.where(y > 0))
            return y.where(y >= 0) if self.transform == "log1p" else y
        if self.threshold is not None:
            t, v = self.threshold, pd.to_numeric(column, errors="coerce")
            return pd.Series(np.where(v > t, f"> {t:g}", f"<= {t:g}"), index=column.index, dtype=object).where(v.notna())
        return column.map(class_name, na_action="ignore").astype(object).where(column.notna())

    def atoms(self, numbers: Iterable[Iterable[int]]) -> np.ndarray:
        """Atoms of each structure's cell (`cell`) or of its reduced formula unit (`formula_unit`); ones for `none`."""
        numbers = list(numbers)
        if self.per_atom == "none":
            return np.ones(len(numbers))
        out = []
        for z in numbers:
            counts = np.unique(np.asarray(z), return_counts=True)[1]
            out.append(len(z) if self.per_atom == "cell" else len(z) / np.gcd.reduce(counts))
        return np.asarray(out, dtype=float)

    def to_model(self, y: np.ndarray, atoms: np.ndarray) -> np.ndarray:
        """Values as the model learns them (before `Scaling`): per atom (divided by `atoms`), then log1p if asked."""
        t = np.asarray(y, dtype=float) / atoms
        return np.log1p(t) if self.transform == "log1p" else t

    def from_model(self, t: np.ndarray, atoms: np.ndarray) -> np.ndarray:
        """The inverse of `to_model`: back to the property's values."""
        t = np.expm1(t) if self.transform == "log1p" else np.asarray(t, dtype=float)
        return t * atoms

    def fit(self, y: np.ndarray, atoms: np.ndarray) -> tuple[np.ndarray, Scaling]:
        """(training values `y` in the model's scaled space, the `Scaling` fitted on them)."""
        t = self.to_model(y, atoms)
        scaling = Scaling.of(t)
        return (t - scaling.center) / scaling.scale, scaling

    def predictions(self, out: np.ndarray, atoms: np.ndarray, scaling: Scaling) -> tuple[np.ndarray, int]:
        """(a model's outputs as the property's values, how many were held at the training targets' range or were
        not a number)."""
        learnt = scaling.learnt(out)
        return self.from_model(scaling.hold(learnt), atoms), scaling.n_held(learnt)

    def unit(self, column_unit: str | None) -> str:
        """The unit of the values (`log10(GPa)` for the log10 of a column in GPa)."""
        unit = column_unit or ""
        if self.transform == "log10":
            return f"log10({unit})" if unit else "log10"
        return unit
