"""DSSL (Fu, Hu et al.): physics-guided dual self-supervised learning.

Predictive part: mask int(0.15 n + 1) atoms per crystal (a fresh mask every time) and predict their
element. Contrastive part: two coordinate-perturbed views (every site moved 0.1-0.5 Å), loss
1 - cos(z1, z2) of the mean-pooled embeddings (no negatives, no projection head). Optional
micro-property pretext on the masked atoms: atomic stiffness (L1) or the valence-electron class (CE).
Loss weights as the paper: 0.5 mask + 0.5 contrastive; with a micro-property 0.1 mask + 0.1 micro +
1.0 contrastive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from matssl.elements import column, symbol
from matssl.objectives.base import Objective, PretrainData, register
from matssl.objectives.views import mask_atoms, perturb_graph

# Atomic stiffness per element as used by the DSSL authors (no units given); 0 elsewhere.
STIFFNESS = {
    "Li": 1.76,
    "Be": 6.02,
    "B": 9.58,
    "C": 15.55,
    "N": 16.32,
    "O": 7.52,
    "F": 4.11,
    "Na": 1.82,
    "Mg": 5.26,
    "Al": 8.54,
    "Si": 10.61,
    "P": 10.45,
    "S": 5.04,
    "Cl": 5.36,
    "K": 1.82,
    "Ca": 4.44,
    "Sc": 8.03,
    "Ti": 12.26,
    "V": 14.99,
    "Cr": 19.21,
    "Mn": 19.71,
    "Fe": 13.03,
    "Co": 14.47,
    "Ni": 13.33,
    "Cu": 10.76,
    "Zn": 7.29,
    "Ga": 6.30,
    "Ge": 8.82,
    "As": 7.16,
    "Se": 4.15,
    "Br": 2.64,
    "Rb": 1.69,
    "Sr": 3.75,
    "Y": 8.42,
    "Zr": 13.81,
    "Nb": 19.91,
    "Mo": 26.02,
    "Tc": 27.36,
    "Ru": 26.86,
    "Rh": 22.45,
    "Pd": 17.64,
    "Ag": 9.90,
    "Cd": 6.54,
    "In": 6.70,
    "Sn": 8.80,
    "Sb": 8.93,
    "Te": 6.81,
    "I": 3.88,
    "Cs": 1.43,
    "Ba": 3.58,
    "Hf": 15.18,
    "Ta": 22.23,
    "W": 30.76,
    "Re": 34.36,
    "Os": 36.07,
    "Ir": 31.48,
    "Pt": 24.27,
    "Au": 15.54,
    "Hg": 9.85,
    "Tl": 6.06,
    "Pb": 8.49,
    "Bi": 8.96,
}


def stiffness_table(max_z: int) -> torch.Tensor:
    return torch.tensor([0.0] + [STIFFNESS.get(symbol(z), 0.0) for z in range(1, max_z + 1)])


def valence_electrons(z: int) -> int:
    """Valence electrons from the periodic-table column (s and p: 1-2, 13-18 -> 3-8; d: group; f: 3)."""
    col = column(z)
    if z == 2:
        return 2
    return 3 if col == 19 else (col - 10 if col >= 13 else col)


@register
class DSSL(Objective):
    name = "dssl"
    defaults = {
        "mask_ratio": 0.15,
        "perturb_min": 0.1,
        "perturb_max": 0.5,
        "micro_property": "none",
        "mask_weight": None,
        "contrastive_weight": None,
        "micro_weight": None,
    }
    choices = {"micro_property": ("none", "stiffness", "valence")}
    ranges = {
        "mask_ratio": (0, 1, True, ""),  # (at least one atom masked, whatever the ratio)
        "perturb_min": (0, float("inf"), True, "a distance (angstrom)"),
        "perturb_max": (0, float("inf"), True, "a distance (angstrom)"),
        **{w: (0, float("inf"), True, "a loss weight") for w in ("mask_weight", "contrastive_weight", "micro_weight")},
    }

    def __init__(self, width: int, params: dict, data: PretrainData):
        super().__init__(width, params, data)
        p = self.p
        micro = p["micro_property"] != "none"
        self.w_mask = p["mask_weight"] if p["mask_weight"] is not None else (0.1 if micro else 0.5)
        self.w_con = p["contrastive_weight"] if p["contrastive_weight"] is not None else (1.0 if micro else 0.5)
        self.w_micro = p["micro_weight"] if p["micro_weight"] is not None else (0.1 if micro else 0.0)
        self.element_head = nn.Linear(width, data.max_z + 1)
        if p["micro_property"] == "stiffness":
            self.register_buffer("micro_target", stiffness_table(data.max_z))
            self.micro_head = nn.Linear(width, 1)
        elif p["micro_property"] == "valence":
            self.register_buffer("micro_target", torch.tensor([0] + [valence_electrons(z) - 1 for z in range(1, data.max_z + 1)]))
            self.micro_head = nn.Linear(width, 17)

    def loss(self, encoder, idx, data, gen, device):
        p = self.p
        base = data.graphs.batch(idx).to(device)
        z = []
        mask_loss = micro_loss = 0.0
        for _ in range(2):
            view, masked = mask_atoms(
                perturb_graph(base, p["perturb_min"], p["perturb_max"], gen), p["mask_ratio"], gen, plus_one=True
            )
            out = encoder(view)
            z.append(out.graph)
            h = out.node[masked]
            true = base.numbers[masked]
            mask_loss = mask_loss + F.cross_entropy(self.element_head(h).float(), true) / 2
            if p["micro_property"] == "stiffness":
                micro_loss = micro_loss + F.l1_loss(self.micro_head(h).squeeze(-1).float(), self.micro_target[true]) / 2
            elif p["micro_property"] == "valence":
                micro_loss = micro_loss + F.cross_entropy(self.micro_head(h).float(), self.micro_target[true]) / 2
        contrastive = (1.0 - F.cosine_similarity(z[0].float(), z[1].float(), dim=1)).mean()
        total = self.w_mask * mask_loss + self.w_con * contrastive + self.w_micro * micro_loss
        parts = {"mask": float(mask_loss.detach()), "contrastive": float(contrastive.detach())}
        if p["micro_property"] != "none":
            parts["micro"] = float(micro_loss.detach())
        return total, parts
