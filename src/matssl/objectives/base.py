"""The objective interface and registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from matssl.graphs import GraphSet

OBJECTIVES: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
    OBJECTIVES[cls.name] = cls
    return cls


class MethodKind(StrEnum):
    """What a method is, declared once per objective (`Objective.kind`): the plan and finetuning follow from it."""

    SCRATCH = "scratch"  # no pretraining: the encoder starts at random, drawn by the finetuning seed
    SELF_SUPERVISED = "self-supervised"  # an encoder pretrained here, on the pool, by the objective
    IMPORTED = "imported"  # an encoder trained elsewhere (its encoder.pt)
    FOUNDATION = "foundation"  # another model: its frozen features (train: head) or every weight (train: all)

    @property
    def trains(self) -> bool:
        """Pretrains here, on the pool: it has a pretraining budget, and the leakage guard applies to it."""
        return self is MethodKind.SELF_SUPERVISED

    @property
    def has_encoder(self) -> bool:
        """Finetunes a graph encoder of this workflow (a pretraining stage), not another model."""
        return self is not MethodKind.FOUNDATION


@dataclass
class PretrainData:
    """What the pretraining stage hands to an objective: the pool's graphs and, when the objective
    needs them, the cached augmented views (`views_of[s]` = positions of structure s's views) and
    per-atom fingerprint targets aligned with `graphs`' atom order."""

    graphs: GraphSet
    views: GraphSet | None = None
    views_of: np.ndarray | None = None  # [S, n_views]
    fingerprints: dict[str, torch.Tensor] = field(default_factory=dict)
    max_z: int = 100


class Objective(nn.Module):
    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    needs_views: ClassVar[bool] = False
    needs_fingerprints: ClassVar[bool] = False
    kind: ClassVar[MethodKind] = MethodKind.SELF_SUPERVISED
    files: ClassVar[tuple[str, ...]] = ()  # parameters that name input files: hashed by their bytes, not their path
    # a control pretraining (no structural information in its target): every other pretrained method is also compared
    # with it, at the same budget (stats.analyse)
    control: ClassVar[bool] = False

    def __init__(self, width: int, params: dict[str, Any], data: PretrainData):
        super().__init__()
        self.check_params(params, where=self.name)
        self.p = {**self.defaults, **params}

    choices: ClassVar[dict[str, tuple]] = {}  # the values a parameter may take, where they are few
    # the interval a number must lie in: (low, high, whether low itself is allowed; high always is), and why, if not plain
    ranges: ClassVar[dict[str, tuple[float, float, bool, str]]] = {}

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str) -> None:
        """Names, types (those of the defaults: a number where the default is a number, ...), choices and ranges."""
        unknown = set(params) - set(cls.defaults)
        if unknown:
            raise ValueError(f"{where}: unknown parameter(s) {sorted(unknown)}; allowed {sorted(cls.defaults)}")
        for k, v in params.items():
            default = cls.defaults[k]
            if k in cls.choices and v not in cls.choices[k]:
                raise ValueError(f"{where}.{k}: {v!r} is not one of {list(cls.choices[k])}")
            if isinstance(default, bool):
                ok = isinstance(v, bool)
            elif isinstance(default, int | float):
                ok = isinstance(v, int | float) and not isinstance(v, bool) and (isinstance(v, int) or isinstance(default, float))
            elif isinstance(default, str) or k in cls.files:
                ok = isinstance(v, str)
            else:  # None: optional, a number when given
                ok = v is None or isinstance(v, int | float) and not isinstance(v, bool)
            if not ok:
                raise ValueError(f"{where}.{k}: {v!r} is not a {type(default).__name__ if default is not None else 'value'}")
            if k in cls.ranges and v is not None:
                low, high, closed, why = cls.ranges[k]
                if not (low <= v if closed else low < v) or v > high:
                    interval = f"{'[' if closed else '('}{low:g}, {high:g}]"
                    raise ValueError(f"{where}.{k}: {v!r} is not in {interval}{f': {why}' if why else ''}")

    @classmethod
    def fingerprint_kinds(cls, params: dict[str, Any]) -> list[str]:
        """The `fingerprints` columns the objective reads (with `needs_fingerprints`)."""
        return []

    def loss(
        self, encoder: nn.Module, idx: np.ndarray, data: PretrainData, gen: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on the pool structures `idx`, and named parts of it for the log."""
        raise NotImplementedError
