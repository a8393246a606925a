"""CrystalCLR (Koker et al. 2022): SimCLR over two augmented views of each crystal, optionally plus
the composition-similarity (CS) loss with equal weight.

The views come from the cached `augment` stage (perturb, strain, column replace, optional supercell,
each with probability 0.5 per view); each epoch draws two different cached views per crystal.
"""

from __future__ import annotations

import torch
from torch import nn

from matssl.objectives.base import Objective, PretrainData, register
from matssl.objectives.losses import CONTRASTIVE_RANGES, composition_similarity, element_sets, nt_xent


@register
class CrystalCLR(Objective):
    name = "crystalclr"
    defaults = {"temperature": 0.1, "projection_dim": 128, "composition_similarity": False}
    ranges = CONTRASTIVE_RANGES
    needs_views = True

    def __init__(self, width: int, params: dict, data: PretrainData):
        super().__init__(width, params, data)
        self.projection = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, self.p["projection_dim"]))

    def loss(self, encoder, idx, data, gen, device):
        n_views = data.views_of.shape[1]
        first = torch.randint(n_views, (len(idx),), generator=gen).numpy()
        second = (first + 1 + torch.randint(n_views - 1, (len(idx),), generator=gen).numpy()) % n_views
        b1 = data.views.batch(data.views_of[idx, first]).to(device)
        b2 = data.views.batch(data.views_of[idx, second]).to(device)
        z1 = self.projection(encoder(b1).graph)
        z2 = self.projection(encoder(b2).graph)
        tau = self.p["temperature"]
        clr = nt_xent(z1, z2, tau)
        parts = {"nt_xent": float(clr.detach())}
        total = clr
        if self.p["composition_similarity"]:
            elements = torch.cat([element_sets(b.numbers, b.graph, b.n_graphs, data.max_z) for b in (b1, b2)])
            cs = composition_similarity(z1, z2, elements, tau)
            parts["composition_similarity"] = float(cs.detach())
            total = clr + cs
        return total, parts


@register
class CrystalCLRCS(CrystalCLR):
    """`crystalclr_cs`: CrystalCLR with the composition-similarity loss on (the paper's CLR+CS)."""

    name = "crystalclr_cs"
    defaults = {**CrystalCLR.defaults, "composition_similarity": True}
