"""Crystal Twins (Magar, Wang, Barati Farimani 2022): two views per crystal, each with 10 % of the atoms
masked and 10 % of the edges dropped independently, and the Barlow Twins loss on their projections."""

from __future__ import annotations

import torch
from torch import nn

from matssl.objectives.base import Objective, PretrainData, register
from matssl.objectives.views import drop_edges, mask_atoms


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2, with C the cross-correlation of the batch-
    standardised projections."""
    n = len(z1)
    a = (z1 - z1.mean(0)) / z1.std(0, unbiased=False).clamp(min=1e-6)
    b = (z2 - z2.mean(0)) / z2.std(0, unbiased=False).clamp(min=1e-6)
    c = a.T @ b / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on + lambd * off


@register
class BarlowTwins(Objective):
    name = "barlow"
    defaults = {"mask_ratio": 0.1, "edge_drop": 0.1, "lambda": 0.0051, "projection_dim": 256}
    ranges = {
        "mask_ratio": (0, 1, True, ""),
        "edge_drop": (0, 1, True, ""),
        "lambda": (0, float("inf"), True, ""),
        "projection_dim": (1, float("inf"), True, ""),
    }

    def __init__(self, width: int, params: dict, data: PretrainData):
        super().__init__(width, params, data)
        d = self.p["projection_dim"]
        self.projection = nn.Sequential(nn.Linear(width, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, d))

    def loss(self, encoder, idx, data, gen, device):
        base = data.graphs.batch(idx).to(device)
        z = []
        for _ in range(2):
            view, _ = mask_atoms(drop_edges(base, self.p["edge_drop"], gen), self.p["mask_ratio"], gen)
            z.append(self.projection(encoder(view).graph).float())
        loss = barlow_twins(z[0], z[1], self.p["lambda"])
        return loss, {}
