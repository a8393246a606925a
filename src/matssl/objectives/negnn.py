"""NEGNN (Kong, Zhao, ..., Chang): self-supervised atomic representations by node and edge prediction.

Mask 15 % of the atoms (fresh masks each time) and hide the features of every edge touching a masked
atom; predict each masked atom's periodic-table column (19 classes: 18 groups + the f-block) and period
(7 classes), and for every hidden edge its distance bin (one of the 41 Gaussian centres) from h_u + h_v.
The loss is the sum of the three cross-entropies. The per-layer atom embeddings (`EncoderOutput.layers`)
are NEGNN's multi-scale representation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from matssl.elements import column, period
from matssl.objectives.base import Objective, PretrainData, register
from matssl.objectives.views import mask_atoms


@register
class NEGNN(Objective):
    name = "negnn"
    defaults = {"mask_ratio": 0.15, "distance_bins": 41, "bin_width": 0.2}

    def __init__(self, width: int, params: dict, data: PretrainData):
        super().__init__(width, params, data)
        zs = range(1, data.max_z + 1)
        self.register_buffer("group", torch.tensor([0] + [column(z) - 1 for z in zs]))
        self.register_buffer("period", torch.tensor([0] + [period(z) - 1 for z in zs]))
        self.group_head = nn.Linear(width, 19)
        self.period_head = nn.Linear(width, 7)
        self.edge_head = nn.Sequential(nn.Linear(width, width), nn.Softplus(), nn.Linear(width, self.p["distance_bins"]))

    def loss(self, encoder, idx, data, gen, device):
        base = data.graphs.batch(idx).to(device)
        view, masked = mask_atoms(base, self.p["mask_ratio"], gen)
        touched = (masked[:, None] | masked[base.nbr]) & base.mask
        out = encoder(view.replace(edge_masked=touched))
        true = base.numbers[masked]
        h = out.node[masked]
        group = F.cross_entropy(self.group_head(h).float(), self.group[true])
        per = F.cross_entropy(self.period_head(h).float(), self.period[true])
        centre = torch.arange(len(base.numbers), device=device)[:, None].expand_as(base.nbr)
        pair = out.node[centre[touched]] + out.node[base.nbr[touched]]
        dist_bin = (base.dist[touched] / self.p["bin_width"]).round().long().clamp(max=self.p["distance_bins"] - 1)
        edge = F.cross_entropy(self.edge_head(pair).float(), dist_bin)
        total = group + per + edge
        return total, {"group": float(group.detach()), "period": float(per.detach()), "distance": float(edge.detach())}
