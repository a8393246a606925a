import numpy as np
import pyarrow.parquet as pq
import pytest

from matssl import graphs as graphs_module
from matssl.graphs import GraphSet, neighbour_graph
from matssl.table import Crystal


def brute_force_neighbours(c: Crystal, cutoff: float) -> list[np.ndarray]:
    """Sorted distances to every periodic image within the cutoff, by explicit image enumeration."""
    cart = c.cart
    r = np.arange(-4, 5)
    images = np.array(np.meshgrid(r, r, r, indexing="ij")).reshape(3, -1).T @ c.lattice
    out = []
    for i in range(len(cart)):
        d = np.linalg.norm(cart[None, :, :] + images[:, None, :] - cart[i], axis=-1).ravel()
        out.append(np.sort(d[(d > 1e-8) & (d <= cutoff)]))
    return out


@pytest.mark.parametrize("name", ["nacl", "silicon", "triclinic"])
def test_k_nearest_match_brute_force(name, request):
    c = request.getfixturevalue(name)
    nbr, vec, mask, images = neighbour_graph(c, cutoff=8.0, k=12)
    expect = brute_force_neighbours(c, 8.0)
    dist = np.linalg.norm(vec, axis=-1)
    for i in range(len(c.numbers)):
        assert mask[i].sum() == min(12, len(expect[i]))
        np.testing.assert_allclose(np.sort(dist[i][mask[i]]), expect[i][:12], atol=1e-5)
        # the stored vector points at the neighbour's periodic image
        assert np.all(nbr[i] < len(c.numbers))
    np.testing.assert_allclose((c.cart[nbr] + images @ c.lattice - c.cart[:, None])[mask], vec[mask], atol=1e-4)


def cluster_and_lone_atom() -> Crystal:
    """A dense 4x4x4 cluster (1 Å spacing) and one atom 6 Å away: dense on average, sparse at one atom."""
    grid = np.array(np.meshgrid(*[np.arange(4.0)] * 3, indexing="ij")).reshape(3, -1).T
    cart = np.vstack([grid, [[7.5, 7.5, 7.5]]])
    return Crystal("cluster", np.eye(3) * 12.0, np.full(len(cart), 6), cart / 12.0)


@pytest.mark.parametrize("name", ["nacl", "triclinic", "cluster"])
def test_short_search_equals_search_of_the_whole_cutoff(name, request, monkeypatch):
    """The first, smaller search sphere changes nothing: same neighbours, same order, same vectors."""
    c = cluster_and_lone_atom() if name == "cluster" else request.getfixturevalue(name)
    radii, pairs = [], graphs_module._pairs
    monkeypatch.setattr(graphs_module, "_pairs", lambda cart, lattice, r: radii.append(r) or pairs(cart, lattice, r))
    fast = neighbour_graph(c, cutoff=8.0, k=12)
    assert radii[0] < 8.0 and (radii[-1] == 8.0) == (name == "cluster")  # the lone atom needs the cutoff
    monkeypatch.setattr(graphs_module, "_pairs", lambda cart, lattice, r: pairs(cart, lattice, 8.0))
    for a, b in zip(fast, neighbour_graph(c, cutoff=8.0, k=12), strict=True):
        np.testing.assert_array_equal(a, b)
    dist = np.linalg.norm(fast[1], axis=-1)
    for i, expect in enumerate(brute_force_neighbours(c, 8.0)):
        np.testing.assert_allclose(dist[i][fast[2][i]], expect[:12], atol=1e-5)


def test_small_cell_has_several_images_of_one_atom(silicon):
    nbr, _, mask, _ = neighbour_graph(silicon, cutoff=8.0, k=12)
    assert mask.all()
    # a 2-atom cell: 12 neighbours can only come from repeated images
    assert len(set(nbr[0].tolist())) <= 2


def test_padding_when_few_neighbours(nacl):
    nbr, vec, mask, _ = neighbour_graph(nacl, cutoff=3.0, k=12)  # 6 Cl at 2.82 Å around each Na
    assert (mask.sum(1) == 6).all()
    assert np.all(vec[~mask] == 0)


def test_isolated_atom_is_rejected():
    c = Crystal("lonely", np.eye(3) * 20.0, np.array([8]), np.array([[0.0, 0.0, 0.0]]))
    reason = neighbour_graph(c, cutoff=8.0, k=12)
    assert isinstance(reason, str) and "isolated atom" in reason
    graphs, rejected = GraphSet.build([c], 8.0, 12)
    assert len(graphs) == 0 and rejected == [("lonely", reason)]


def test_batch_reindexes_neighbours(nacl, silicon, triclinic, tmp_path):
    graphs, _ = GraphSet.build([nacl, silicon, triclinic], 8.0, 12)
    graphs.save(tmp_path / "g.npz")
    graphs = GraphSet.load(tmp_path / "g.npz")
    b = graphs.batch(np.array([2, 0]))
    n_tri, n_nacl = len(triclinic.numbers), len(nacl.numbers)
    assert b.numbers.tolist() == triclinic.numbers.tolist() + nacl.numbers.tolist()
    assert b.graph.tolist() == [0] * n_tri + [1] * n_nacl
    # neighbours of the second graph's atoms point into its own block
    assert (b.nbr[n_tri:] >= n_tri).all() and (b.nbr[:n_tri] < n_tri).all()
    single = graphs.batch(np.array([0]))
    np.testing.assert_allclose(b.dist[n_tri:].numpy(), single.dist.numpy())


@pytest.mark.parametrize("cells", [(1, 1, 1), (1, 1, 2), (1, 2, 2), (2, 2, 2), (3, 1, 2)])
def test_supercell_batch_is_the_supercells_own_graph(triclinic, cells):
    """Index arithmetic on the cell's graph gives the graph a neighbour search of the supercell gives (low
    symmetry cells: no ties at the twelfth neighbour to be broken otherwise)."""
    from matssl.augment import supercell

    other = Crystal("other", np.diag([3.1, 3.7, 4.4]) + 0.3, np.array([8, 26]), np.array([[0.1, 0.2, 0.3], [0.55, 0.4, 0.9]]))
    graphs, _ = GraphSet.build([other, triclinic], 8.0, 12)
    b = graphs.supercell_batch(np.array([1, 0]), np.array([cells, (2, 1, 1)]))
    for g, (c, m) in enumerate([(triclinic, cells), (other, (2, 1, 1))]):
        big = supercell(c, m)
        nbr, vec, mask, _ = neighbour_graph(big, cutoff=8.0, k=12)
        atoms = np.flatnonzero(b.graph.numpy() == g)
        assert len(atoms) == len(big.numbers) and b.numbers[atoms].tolist() == big.numbers.tolist()
        got_nbr = b.nbr[atoms].numpy() - atoms[0]
        got_vec = b.vec[atoms].numpy()
        assert np.array_equal(b.mask[atoms].numpy(), mask)
        for i in range(len(atoms)):  # the same (neighbour, vector) pairs; ties may order them otherwise
            ours = sorted(zip(got_nbr[i].tolist(), np.round(got_vec[i], 3).tolist(), strict=True))
            theirs = sorted(zip(nbr[i].tolist(), np.round(vec[i], 3).tolist(), strict=True))
            assert ours == theirs
    assert b.n_graphs == 2 and b.graph.tolist() == sorted(b.graph.tolist())


def test_built_in_chunks_or_at_once_the_same_graphs(nacl, silicon, triclinic, monkeypatch, tmp_path):
    from matssl import features
    from matssl.table import to_arrow, write_table

    crystals = [nacl, silicon, triclinic, Crystal("lonely", np.eye(3) * 20.0, np.array([8]), np.zeros((1, 3))), nacl]
    whole, rejected = GraphSet.build(crystals, 8.0, 12)
    chunked, rejected_chunked = GraphSet.build(crystals, 8.0, 12, chunk=2)
    assert rejected == rejected_chunked == [("lonely", rejected[0][1])]
    for f in GraphSet.FIELDS:
        np.testing.assert_array_equal(getattr(whole, f), getattr(chunked, f))

    # the augment stage streams its views in chunks of structures: the same views and graphs as in one; a view
    # without a graph is in its rejected.parquet with the reason
    write_table(to_arrow(crystals[1:4], [], source="t"), tmp_path / "structures.parquet")
    spec = {
        "params": {"augment": {"n_views": 3}, "graphs": {"cutoff": 8.0, "max_neighbors": 12}, "max_z": 100},
        "upstream": {"structures": str(tmp_path)},
    }
    outputs = []
    for size in (2, 4096):
        monkeypatch.setattr(features, "AUGMENT_CHUNK", size)
        out = tmp_path / f"chunk{size}"
        out.mkdir()
        assert features.run_augment(spec, out) == {"n_views": 9, "n_graphs": 6, "n_rejected": 3}
        rejected = pq.read_table(out / "rejected.parquet").to_pylist()
        assert [r["id"] for r in rejected] == [f"lonely#v{k}" for k in range(3)] and "isolated atom" in rejected[0]["reason"]
        outputs.append((GraphSet.load(out / "graphs.npz"), pq.read_table(out / "views.parquet")))
    (a, views_a), (b, views_b) = outputs
    assert views_a.equals(views_b) and len(views_a) == 9
    for f in GraphSet.FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
