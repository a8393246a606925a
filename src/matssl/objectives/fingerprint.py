"""Fingerprint-target pretraining (Jia, Govil, Ramprasad, Fung 2025): regress every atom's local
fingerprint (`descriptor`: one kind of the `fingerprints` stage, element-aware wACSF, SOAP over element
groups or EAD as in the paper, or a geometry-only ablation; targets standardised per dimension) from its
node embedding, with L1 over the whole vector."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from matssl.config import FINGERPRINT_KINDS, RENAMED_KINDS
from matssl.objectives.base import Objective, PretrainData, register


@register
class FingerprintTarget(Objective):
    name = "fingerprint"
    defaults = {"descriptor": "wacsf"}
    choices = {"descriptor": FINGERPRINT_KINDS}
    needs_fingerprints = True

    @classmethod
    def check_params(cls, params: dict, where: str) -> None:
        renamed = RENAMED_KINDS.get(params.get("descriptor"))
        if renamed:
            raise ValueError(f"{where}.descriptor: {params['descriptor']!r} is now {renamed!r} (geometry only)")
        super().check_params(params, where)

    @classmethod
    def fingerprint_kinds(cls, params: dict) -> list[str]:
        return [params.get("descriptor", cls.defaults["descriptor"])]

    def __init__(self, width: int, params: dict, data: PretrainData):
        super().__init__(width, params, data)
        if self.p["descriptor"] not in data.fingerprints:
            raise ValueError(
                f"fingerprint.descriptor {self.p['descriptor']!r}: the fingerprints stage has {sorted(data.fingerprints)}"
            )
        target = data.fingerprints[self.p["descriptor"]]
        self.register_buffer("target", (target - target.mean(0)) / target.std(0).clamp(min=1e-6), persistent=False)
        self.head = nn.Sequential(nn.Linear(width, width), nn.Softplus(), nn.Linear(width, target.shape[1]))

    def loss(self, encoder, idx, data, gen, device):
        atoms, _, _ = data.graphs.atom_index(idx)
        out = encoder(data.graphs.batch(idx).to(device))
        pred = self.head(out.node).float()
        return F.l1_loss(pred, self.target[torch.from_numpy(atoms).to(self.target.device)]), {}


@register
class ShuffledFingerprintTarget(FingerprintTarget):
    """The control pretraining: the fingerprint objective's head, loss and budget on targets shuffled across the
    pool's atoms (one permutation, fixed by `shuffle_seed`), so that an atom's target is another atom's and says
    nothing about its own structure. What it can still teach is what any pretraining teaches (trained weights, the
    targets' scales and distribution): a method that helps no more than this control helps as "a pretrained start",
    not through what its objective asks."""

    name = "fingerprint_control"
    defaults = {"descriptor": "wacsf", "shuffle_seed": 0}
    control = True

    def __init__(self, width: int, params: dict, data: PretrainData):
        super().__init__(width, params, data)
        order = torch.randperm(len(self.target), generator=torch.Generator().manual_seed(self.p["shuffle_seed"]))
        self.target = self.target[order.to(self.target.device)]


def aligned_fingerprints(table, graphs, kinds: list[str]) -> dict[str, torch.Tensor]:
    """Per-atom descriptor matrices in the atom order of `graphs` (structures the graphs stage
    rejected are skipped)."""
    from matssl.fingerprints import matrix

    ids = np.asarray(table.column("id").to_numpy(zero_copy_only=False))
    starts = {}
    boundaries = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    for b in boundaries:
        starts[ids[b]] = b
    rows = np.concatenate([np.arange(starts[i], starts[i] + n) for i, n in zip(graphs.ids.tolist(), graphs.n_atoms, strict=True)])
    return {k: torch.from_numpy(matrix(table, k)[rows]) for k in kinds}
