"""NEGNN (Kong, Zhao, ..., Chang): self-supervised atomic representations by node and edge prediction.

Mask 15 % of the atoms (fresh masks each time) and hide the features of every edge touching a masked
atom; predict each masked atom's periodic-table column (19 classes: 18 groups + the f-block) and period
(7 classes), and for every hidden edge its distance bin (one of the 41 Gaussian centres) from h_u + h_v.
The loss is the sum of the three cross-entropies. The per-layer atom embeddings (`EncoderOutput.layers`)
are NEGNN's multi-scale representation. `negnn_contrastive` is the paper's second, contrastive variant.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from matssl.elements import column, period
from matssl.objectives.base import Objective, PretrainData, register
from matssl.objectives.losses import CONTRASTIVE_RANGES, nt_xent
from matssl.objectives.views import hide_edges, mask_atoms


@register
class NEGNN(Objective):
    name = "negnn"
    defaults = {"mask_ratio": 0.15, "distance_bins": 41, "bin_width": 0.2}
    ranges = {"mask_ratio": (0, 1, False, "the masked atoms are what it predicts")}

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


SUPERCELLS = np.array([(1, 1, 2), (1, 2, 2), (2, 2, 2), (1, 1, 1)])  # NEGNN's GraphCL views: one drawn per view


@register
class NEGNNContrastive(Objective):
    """NEGNN's contrastive variant (GraphCL-style): two views of each crystal, each a random supercell of it
    (1x1x2, 1x2x2, 2x2x2 or none, built from the cell's graph by `GraphSet.supercell_batch`), then 20 % of its
    atoms masked and 20 % of its edges' features hidden; the paper's 64-64-64 projection (width -> 64 -> 64, ReLU) of
    each view's mean-pooled embedding, NT-Xent at tau = 0.1 between the two views of each crystal.

    The paper sums atom embeddings into a material vector; the readout here is the encoder's mean, the one
    finetuning uses. Under the mean a supercell alone leaves every atom's environment and the pooled vector
    unchanged: what it changes is the masks, which no longer repeat with the cell's period."""

    name = "negnn_contrastive"
    defaults = {"mask_ratio": 0.2, "edge_mask_ratio": 0.2, "temperature": 0.1, "projection_dim": 64, "supercells": True}
    ranges = {"mask_ratio": (0, 1, True, ""), "edge_mask_ratio": (0, 1, True, ""), **CONTRASTIVE_RANGES}

    def __init__(self, width: int, params: dict, data: PretrainData):
        super().__init__(width, params, data)
        d = self.p["projection_dim"]
        self.projection = nn.Sequential(nn.Linear(width, d), nn.ReLU(), nn.Linear(d, d))

    def view(self, idx: np.ndarray, data: PretrainData, gen: torch.Generator, device: torch.device):
        if self.p["supercells"]:
            cells = SUPERCELLS[torch.randint(len(SUPERCELLS), (len(idx),), generator=gen).numpy()]
            batch = data.graphs.supercell_batch(idx, cells)
        else:
            batch = data.graphs.batch(idx)
        batch, _ = mask_atoms(batch.to(device), self.p["mask_ratio"], gen)
        return hide_edges(batch, self.p["edge_mask_ratio"], gen)

    def loss(self, encoder, idx, data, gen, device):
        z1, z2 = (self.projection(encoder(self.view(idx, data, gen, device)).graph) for _ in range(2))
        loss = nt_xent(z1, z2, self.p["temperature"])
        return loss, {"nt_xent": float(loss.detach())}
