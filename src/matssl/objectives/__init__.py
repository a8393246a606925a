"""Pretraining objectives: one module each, one registry (`OBJECTIVES`).

An objective owns its heads (projection, classifiers) and computes a loss for a mini-batch of pool
structures from the shared encoder. Register a new one with `@register` in a module imported here.
"""

from matssl.objectives import (  # noqa: F401  (registers them)
    barlow,
    crystalclr,
    dssl,
    fingerprint,
    foundation,
    negnn,
    pretrained,
    scratch,
)
from matssl.objectives.base import OBJECTIVES, MethodKind, Objective, PretrainData, register

__all__ = ["OBJECTIVES", "MethodKind", "Objective", "PretrainData", "register"]
