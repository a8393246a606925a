"""Crystal graphs in a dense [atoms x neighbours] layout.

Every atom keeps its `max_neighbors` nearest periodic neighbours within `cutoff` (periodic images are
enumerated by pymatgen's compiled neighbour search, so small cells get several images of one atom).
An atom with fewer neighbours is padded and masked. The layout needs no scatter in message passing:
neighbour features are gathered with one index, and sums run over the neighbour axis.

A `GraphSet` holds many structures as concatenated arrays and is stored as a NumPy `.npz` (no pickle).
Displacement vectors (not only distances) are stored, so that perturbation and strain can be applied
on the fly without a new neighbour search (the neighbour set is kept fixed), and so is the periodic image
of each neighbour, so that a supercell's graph is built from its cell's by index arithmetic alone
(`GraphSet.supercell_batch`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from matssl.io import atomic_path
from matssl.table import Crystal, periodic_pairs


def neighbour_graph(c: Crystal, cutoff: float, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | str:
    """(nbr [n,k] int32, vec [n,k,3] float32, mask [n,k] bool, images [n,k,3] int8: the lattice translation
    of each neighbour, vec = cart[nbr] + images @ lattice - cart) or a rejection reason."""
    n = len(c.numbers)
    lattice = np.ascontiguousarray(c.lattice, dtype=float)
    cart = np.ascontiguousarray(c.frac @ lattice)
    # The k nearest neighbours usually lie well inside the cutoff (8 Å holds ~140 atoms, k is 12), and
    # sorting every pair costs more than the search. So search first a sphere expected to hold ~3k
    # atoms at this density; where any atom finds fewer than k strictly inside it, search the cutoff.
    radius = min(cutoff, (9 * k / (4 * np.pi) * abs(np.linalg.det(lattice)) / n) ** (1 / 3))
    i, j, img, d = _pairs(cart, lattice, radius)
    if radius < cutoff and (np.bincount(i[d < radius - 1e-3], minlength=n) < k).any():
        i, j, img, d = _pairs(cart, lattice, cutoff)
    counts = np.bincount(i, minlength=n)
    if (counts == 0).any():
        return f"isolated atom (no neighbour within {cutoff} Å)"
    # by centre, then distance; ties by neighbour index and image, so the result is the same for both
    # search radii
    order = np.lexsort((img[:, 2], img[:, 1], img[:, 0], j, d, i))
    i, j, img = i[order], j[order], img[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(i)) - starts[i]
    sel = rank < k
    i, j, img, rank = i[sel], j[sel], img[sel], rank[sel]
    if np.abs(img).max(initial=0) > np.iinfo(np.int8).max:
        return f"a lattice vector far shorter than the cutoff ({cutoff} Å): neighbours beyond 127 cells"
    nbr = np.repeat(np.arange(n, dtype=np.int32)[:, None], k, axis=1)
    vec = np.zeros((n, k, 3), dtype=np.float32)
    mask = np.zeros((n, k), dtype=bool)
    images = np.zeros((n, k, 3), dtype=np.int8)
    nbr[i, rank] = j
    vec[i, rank] = cart[j] + img @ lattice - cart[i]
    mask[i, rank] = True
    images[i, rank] = img
    return nbr, vec, mask, images


def _pairs(cart: np.ndarray, lattice: np.ndarray, radius: float) -> tuple[np.ndarray, ...]:
    """(centre, neighbour, image, distance) of every periodic pair within `radius`, self pairs dropped."""
    i, j, img, d = periodic_pairs(lattice, cart, radius)
    keep = d > 1e-8
    return i[keep], j[keep], img[keep], d[keep]


def atoms_per_graph(graph: torch.Tensor, n_graphs: int) -> torch.Tensor:
    """[n_graphs] long: the number of atoms of each graph. By `index_add_`: `bincount` would make the
    host wait for a GPU (it reads the largest index to size its output)."""
    return torch.zeros(n_graphs, dtype=torch.long, device=graph.device).index_add_(0, graph, torch.ones_like(graph))


@dataclass
class Batch:
    """A mini-batch of graphs; tensors live on one device."""

    numbers: torch.Tensor  # [N] long, 0 = masked atom
    nbr: torch.Tensor  # [N, K] long, index into this batch's atoms
    vec: torch.Tensor  # [N, K, 3] float, displacement to each neighbour (Å)
    mask: torch.Tensor  # [N, K] bool, real neighbour
    graph: torch.Tensor  # [N] long, graph of each atom
    n_graphs: int
    edge_masked: torch.Tensor | None = None  # [N, K] bool: edge features hidden (masked pretraining)

    def to(self, device: torch.device | str) -> Batch:
        if str(device) == "cpu":
            return self
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        moved = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in moved.items()}
        return Batch(**moved)

    def replace(self, **changes) -> Batch:
        return dataclasses.replace(self, **changes)

    @property
    def dist(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.vec, dim=-1)

    @property
    def counts(self) -> torch.Tensor:
        return atoms_per_graph(self.graph, self.n_graphs)


class GraphSet:
    """Graphs of many structures, concatenated: `ptr[s]:ptr[s+1]` are the atoms of structure s."""

    FIELDS = ("ids", "ptr", "numbers", "nbr", "vec", "mask", "images")

    def __init__(self, ids, ptr, numbers, nbr, vec, mask, images):
        """ids [S]; ptr [S+1] int64; per atom: numbers [N] int16, nbr [N,K] int32 (index inside its structure),
        vec [N,K,3] float32, mask [N,K] bool, images [N,K,3] int8 (see `neighbour_graph`)."""
        self.ids, self.ptr, self.numbers, self.nbr, self.vec, self.mask = ids, ptr, numbers, nbr, vec, mask
        self.images = images
        self.index = {s: k for k, s in enumerate(ids.tolist())}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_atoms(self) -> np.ndarray:
        return np.diff(self.ptr)

    @classmethod
    def build(
        cls, crystals: Iterable[Crystal], cutoff: float, k: int, chunk: int = 4096
    ) -> tuple[GraphSet, list[tuple[str, str]]]:
        """The graphs of `crystals` and the (id, reason) of those rejected."""
        builder = GraphSetBuilder(cutoff, k)
        crystals = iter(crystals)
        while batch := list(itertools.islice(crystals, chunk)):
            builder.add(batch)
        return builder.finish()

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{f: getattr(self, f) for f in self.FIELDS})

    @classmethod
    def load(cls, path: str | Path) -> GraphSet:
        with np.load(path, allow_pickle=False) as z:
            missing = [f for f in cls.FIELDS if f not in z.files]
            if missing:
                raise ValueError(f"{path} lacks {', '.join(missing)}: made by an older matssl; make its stage again")
            return cls(*(z[f] for f in cls.FIELDS))

    def subset_index(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """Positions of `ids` in this set (ids that were rejected are skipped)."""
        return np.array([self.index[i] for i in ids if i in self.index], dtype=np.int64)

    def atom_index(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(global atom positions, graph of each atom, first atom of each graph) for structures `idx`."""
        idx = np.asarray(idx, dtype=np.int64)
        counts = self.ptr[idx + 1] - self.ptr[idx]
        new_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        graph = np.repeat(np.arange(len(idx)), counts)
        atoms = np.arange(int(counts.sum())) - new_start[graph] + self.ptr[idx][graph]
        return atoms, graph, new_start

    def batch(self, idx: np.ndarray) -> Batch:
        """Collate structures `idx` into one batch (pure NumPy gathers; no per-graph Python loop)."""
        atoms, graph, new_start = self.atom_index(idx)
        return self._collate(atoms, graph, self.nbr[atoms].astype(np.int64) + new_start[graph][:, None], len(idx))

    def supercell_batch(self, idx: np.ndarray, cells: np.ndarray) -> Batch:
        """Structure idx[b] repeated cells[b] = (m1, m2, m3) times along its lattice vectors, collated. Copy
        t = (t1, t2, t3) of atom a is atom (t1 m2 m3 + t2 m3 + t3) n + a (the order of `augment.supercell`); it
        keeps a's displacement vectors, and a neighbour in lattice translation `images` of the cell becomes
        copy (t + images) mod m of that neighbour. The graph equals the supercell's own (up to which of equally
        distant neighbours fills the last slot), built from the cell's in index arithmetic alone (no neighbour search)."""
        idx = np.asarray(idx, dtype=np.int64)
        m = np.asarray(cells, dtype=np.int64).reshape(len(idx), 3)
        n = self.ptr[idx + 1] - self.ptr[idx]
        counts = n * m.prod(axis=1)
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        graph = np.repeat(np.arange(len(idx)), counts)
        copy, local = np.divmod(np.arange(int(counts.sum())) - start[graph], n[graph])
        atoms = self.ptr[idx][graph] + local
        m = m[graph]  # [N, 3]
        t = np.stack([copy // (m[:, 1] * m[:, 2]), copy // m[:, 2] % m[:, 1], copy % m[:, 2]], axis=1)
        u = (t[:, None, :] + self.images[atoms]) % m[:, None, :]  # [N, K, 3] the neighbour's copy
        to_copy = (u[..., 0] * m[:, 1, None] + u[..., 1]) * m[:, 2, None] + u[..., 2]
        return self._collate(atoms, graph, start[graph][:, None] + to_copy * n[graph][:, None] + self.nbr[atoms], len(idx))

    def _collate(self, atoms: np.ndarray, graph: np.ndarray, nbr: np.ndarray, n_graphs: int) -> Batch:
        """The batch of the stored atoms `atoms` (graph of each: `graph`), with neighbours `nbr` re-indexed into it."""
        return Batch(
            numbers=torch.from_numpy(self.numbers[atoms].astype(np.int64)),
            nbr=torch.from_numpy(nbr),
            vec=torch.from_numpy(self.vec[atoms]),
            mask=torch.from_numpy(self.mask[atoms]),
            graph=torch.from_numpy(graph),
            n_graphs=n_graphs,
        )


class GraphSetBuilder:
    """A `GraphSet` built chunk by chunk (`add`, then `finish`). Each chunk's graphs are joined as it is added, and at
    the end the chunks are copied into the set's arrays one at a time, each freed once copied: the peak memory is
    about the set's own size and a chunk, not twice the set (a pool's augmented views are several GB)."""

    def __init__(self, cutoff: float, k: int):
        self.cutoff, self.k = cutoff, k
        self.ids: list[str] = []
        self.counts: list[int] = []
        self.chunks: list[list[np.ndarray]] = []
        self.rejected: list[tuple[str, str]] = []

    def add(self, crystals: Iterable[Crystal]) -> None:
        numbers, parts = [], []
        for c in crystals:
            g = neighbour_graph(c, self.cutoff, self.k)
            if isinstance(g, str):
                self.rejected.append((c.id, g))
                continue
            self.ids.append(c.id)
            self.counts.append(len(c.numbers))
            numbers.append(c.numbers.astype(np.int16))
            parts.append(g)
        if numbers:
            self.chunks.append([np.concatenate(numbers), *(np.concatenate(column) for column in zip(*parts, strict=True))])

    def finish(self) -> tuple[GraphSet, list[tuple[str, str]]]:
        """The set (once: the chunks are consumed)."""
        if self.counts and not self.chunks:
            raise RuntimeError("GraphSetBuilder.finish was called already")
        n, k = int(sum(self.counts)), self.k
        shapes = [((n,), np.int16), ((n, k), np.int32), ((n, k, 3), np.float32), ((n, k), bool), ((n, k, 3), np.int8)]
        arrays = [np.empty(shape, dtype) for shape, dtype in shapes]  # (pages are taken as they are written)
        start = 0
        while self.chunks:
            chunk = self.chunks.pop(0)
            end = start + len(chunk[0])
            for dst, src in zip(arrays, chunk, strict=True):
                dst[start:end] = src
            start = end
        ptr = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)]).astype(np.int64)
        return GraphSet(np.array(self.ids, dtype=str), ptr, *arrays), self.rejected
