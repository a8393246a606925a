"""On-the-fly views of a batch (drawn anew every time a crystal is seen): atom masking, edge
dropping, edge-feature hiding and coordinate perturbation (supercells: `GraphSet.supercell_batch`). All randomness comes from the trainer's torch generator."""

from __future__ import annotations

import torch

from matssl.encoders import MASK_TOKEN
from matssl.graphs import Batch


def rank_in_graph(batch: Batch, gen: torch.Generator) -> torch.Tensor:
    """A random order of the atoms inside each graph: [N] ranks 0..n_g-1."""
    score = torch.rand(len(batch.numbers), generator=gen).to(batch.graph.device)
    order = torch.argsort(batch.graph.to(score.dtype) * 2.0 + score)  # by graph, then by the random score
    first = torch.cumsum(batch.counts, 0) - batch.counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device) - first[batch.graph[order]]
    return rank


def mask_atoms(batch: Batch, ratio: float, gen: torch.Generator, plus_one: bool = False) -> tuple[Batch, torch.Tensor]:
    """Mask int(ratio * n + 1) (DSSL, `plus_one`) or max(1, round(ratio * n)) atoms of every graph (without
    `plus_one`, none at ratio 0): their element becomes the mask token. Returns the masked batch and the [N] bool mask."""
    n = batch.counts.to(torch.float32)
    per_graph = (ratio * n + 1).floor() if plus_one else (ratio * n).round().clamp(min=1 if ratio > 0 else 0)
    per_graph = torch.minimum(per_graph, n).long()
    masked = rank_in_graph(batch, gen) < per_graph[batch.graph]
    return batch.replace(numbers=batch.numbers.masked_fill(masked, MASK_TOKEN)), masked


def drop_edges(batch: Batch, ratio: float, gen: torch.Generator) -> Batch:
    """Remove a random `ratio` of the edges (Crystal Twins), keeping at least one per atom."""
    drop = (torch.rand(batch.mask.shape, generator=gen) < ratio).to(batch.mask.device)
    keep = batch.mask & ~drop
    keep[:, 0] |= batch.mask[:, 0] & ~keep.any(dim=1)  # never isolate an atom
    return batch.replace(mask=keep)


def hide_edges(batch: Batch, ratio: float, gen: torch.Generator) -> Batch:
    """Hide the features (length) of a random `ratio` of the edges, on top of any already hidden; the
    edges stay, so messages still pass along them."""
    hide = (torch.rand(batch.mask.shape, generator=gen) < ratio).to(batch.mask.device) & batch.mask
    if batch.edge_masked is not None:
        hide |= batch.edge_masked
    return batch.replace(edge_masked=hide)


def perturb_graph(batch: Batch, lo: float, hi: float, gen: torch.Generator) -> Batch:
    """Move every atom by a length U(lo, hi) Å in a random direction; neighbour lists stay fixed and
    every displacement vector is updated exactly: v_ij + d_j - d_i."""
    n = len(batch.numbers)
    direction = torch.randn(n, 3, generator=gen)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-12)
    shift = (direction * (lo + (hi - lo) * torch.rand(n, 1, generator=gen))).to(batch.vec.device, batch.vec.dtype)
    return batch.replace(vec=batch.vec + shift[batch.nbr] - shift[:, None, :])
