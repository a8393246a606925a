"""Loss functions shared by several objectives, written to be checked by hand on tiny batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# the parameter ranges of every objective with an NT-Xent loss through a projection head (Objective.ranges)
CONTRASTIVE_RANGES = {
    "temperature": (0, float("inf"), False, "NT-Xent divides by it"),
    "projection_dim": (1, float("inf"), True, ""),
}


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent: view i of the first batch is the positive of view i of the second; every
    other view in the 2N batch (2N-2 of them) is a negative. Cosine similarity over `temperature`, in float32 (under
    autocast too: a bf16 similarity over tau = 0.1 would round the logits)."""
    with torch.autocast(z1.device.type, enabled=False):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        sim = z @ z.T / temperature
    n = len(z1)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def composition_positives(elements: torch.Tensor) -> torch.Tensor:
    """[2N, 2N] bool: views that share at least one element (binary element vectors), plus each
    view's own twin (i <-> i+N), never itself."""
    e = elements.float()
    pos = (e @ e.T) > 0
    n2 = len(e)
    n = n2 // 2
    twin = torch.zeros(n2, n2, dtype=torch.bool, device=e.device)
    idx = torch.arange(n, device=e.device)
    twin[idx, idx + n] = True
    twin[idx + n, idx] = True
    return (pos | twin) & ~torch.eye(n2, dtype=torch.bool, device=e.device)


def composition_similarity(z1: torch.Tensor, z2: torch.Tensor, elements: torch.Tensor, temperature: float) -> torch.Tensor:
    """CrystalCLR's CS loss: L(i) = -log( mean_{p in P(i)} exp(s_ip) / sum_{k != i} exp(s_ik) ),
    with P(i) the views sharing an element with i (the mean over positives sits inside the log)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    pos = composition_positives(elements)
    log_denominator = torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1)
    log_numerator = torch.logsumexp(sim.masked_fill(~pos, float("-inf")), dim=1) - torch.log(pos.sum(1).float())
    return (log_denominator - log_numerator).mean()


def element_sets(numbers: torch.Tensor, graph: torch.Tensor, n_graphs: int, max_z: int = 100) -> torch.Tensor:
    """[B, max_z + 1] binary vector of the elements in each graph (column 0 unused)."""
    out = torch.zeros(n_graphs, max_z + 1, dtype=torch.bool, device=numbers.device)
    out[graph, numbers] = True
    return out
