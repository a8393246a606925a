import math

import numpy as np
import pytest
import torch

from matssl.augment import make_views
from matssl.config import AugmentConfig
from matssl.encoders import CGCNN
from matssl.graphs import GraphSet
from matssl.objectives import OBJECTIVES, MethodKind, PretrainData
from matssl.objectives.barlow import barlow_twins
from matssl.objectives.losses import composition_positives, composition_similarity, element_sets, nt_xent
from matssl.objectives.views import mask_atoms, perturb_graph
from matssl.pretrain import views_index


def test_nt_xent_by_hand():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.2], [-0.1, 1.0], [1.0, 0.8]])
    tau = 0.5
    z = torch.cat([z1, z2]).numpy()
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    total = 0.0
    for i in range(6):
        pos = (i + 3) % 6
        denom = sum(math.exp(z[i] @ z[k] / tau) for k in range(6) if k != i)
        total += -math.log(math.exp(z[i] @ z[pos] / tau) / denom)
    assert float(nt_xent(z1, z2, tau)) == pytest.approx(total / 6, rel=1e-5)


def test_composition_positive_sets():
    # crystals: 0 = NaCl, 1 = KCl (shares Cl with 0), 2 = Si (shares nothing); two views each
    numbers = torch.tensor([11, 17, 19, 17, 14, 11, 17, 19, 17, 14])
    graph = torch.tensor([0, 0, 1, 1, 2, 3, 3, 4, 4, 5])
    elements = element_sets(numbers, graph, 6)
    pos = composition_positives(elements)
    expect = {0: {1, 3, 4}, 1: {0, 3, 4}, 2: {5}, 3: {0, 1, 4}, 4: {0, 1, 3}, 5: {2}}
    assert {i: set(torch.nonzero(pos[i]).flatten().tolist()) for i in range(6)} == expect


def test_composition_similarity_by_hand():
    torch.manual_seed(0)
    z1, z2 = torch.randn(2, 4), torch.randn(2, 4)
    elements = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=torch.bool)  # no sharing across crystals
    tau = 0.2
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    s = (z @ z.T / tau).numpy()
    total = 0.0
    for i in range(4):
        positives = [(i + 2) % 4]  # only its own twin shares an element
        num = np.mean([math.exp(s[i, p]) for p in positives])
        den = sum(math.exp(s[i, k]) for k in range(4) if k != i)
        total += -math.log(num / den)
    assert float(composition_similarity(z1, z2, elements, tau)) == pytest.approx(total / 4, rel=1e-5)
    # with one positive (the twin) the CS loss equals NT-Xent
    assert float(composition_similarity(z1, z2, elements, tau)) == pytest.approx(float(nt_xent(z1, z2, tau)), rel=1e-5)


@pytest.fixture
def corpus(nacl, silicon, triclinic):
    from matssl.config import FingerprintConfig
    from matssl.fingerprints import compute
    from matssl.objectives.fingerprint import aligned_fingerprints

    crystals = []
    for k, base in enumerate([nacl, silicon, triclinic] * 4):
        c = type(base)(f"{base.id}{k}", base.lattice * (1 + 0.03 * k), base.numbers, base.frac)
        crystals.append(c)
    graphs, _ = GraphSet.build(crystals, 6.0, 12)
    views = [v for c in crystals for v in make_views(c, AugmentConfig(n_views=3), 100)]
    view_graphs, _ = GraphSet.build(views, 6.0, 12)
    views_of, complete = views_index(graphs, view_graphs)
    assert complete.all()
    kinds = ["wacsf", "soap_groups", "ead", "acsf_geometry", "soap_geometry"]
    table = compute(
        crystals, FingerprintConfig(kinds=kinds, soap_n_max=2, soap_l_max=2, soap_groups_n_max=2, soap_groups_l_max=2)
    )
    return PretrainData(graphs, view_graphs, views_of, aligned_fingerprints(table, graphs, kinds))


ALL = [
    ("crystalclr", {}),
    ("crystalclr_cs", {}),
    ("dssl", {}),
    ("dssl", {"micro_property": "stiffness"}),
    ("dssl", {"micro_property": "valence"}),
    ("negnn", {}),
    ("negnn_contrastive", {}),
    ("barlow", {}),
    *[("fingerprint", {"descriptor": k}) for k in ("wacsf", "soap_groups", "ead", "acsf_geometry", "soap_geometry")],
]


@pytest.mark.parametrize("name, params", ALL)
def test_objective_lowers_its_loss(corpus, name, params, device):
    torch.manual_seed(0)
    enc = CGCNN(width=32, layers=2, cutoff=6.0).to(device)
    obj = OBJECTIVES[name](32, params, corpus).to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(obj.parameters()), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    idx = np.arange(len(corpus.graphs))

    def loss():
        return obj.loss(enc, idx, corpus, gen, device)[0]

    torch.manual_seed(1)
    first = np.mean([float(loss().detach()) for _ in range(5)])
    for _ in range(60):
        opt.zero_grad()
        loss().backward()
        opt.step()
    last = np.mean([float(loss().detach()) for _ in range(5)])
    assert last < 0.8 * first


def test_the_control_shuffles_the_fingerprint_targets_across_atoms(corpus):
    plain = OBJECTIVES["fingerprint"](32, {"descriptor": "wacsf"}, corpus).target
    control = OBJECTIVES["fingerprint_control"](32, {"descriptor": "wacsf"}, corpus).target
    assert control.shape == plain.shape and not torch.equal(control, plain)
    # the same rows in another order: each dimension keeps its values, an atom does not keep its own
    assert torch.equal(torch.sort(control, dim=0).values, torch.sort(plain, dim=0).values)
    assert torch.equal(OBJECTIVES["fingerprint_control"](32, {"descriptor": "wacsf"}, corpus).target, control)  # fixed
    other = OBJECTIVES["fingerprint_control"](32, {"descriptor": "wacsf", "shuffle_seed": 1}, corpus).target
    assert not torch.equal(other, control)
    assert OBJECTIVES["fingerprint_control"].kind is MethodKind.SELF_SUPERVISED  # pretrained, guarded, budgeted alike


def test_negnn_contrastive_loss_by_hand(corpus):
    """With nothing masked, every supercell view of a crystal pools to the crystal's own vector (mean over
    atoms whose environments the supercell repeats; batch norm in eval mode), so the loss is NT-Xent of two
    equal projections, written out here."""
    torch.manual_seed(0)
    enc = CGCNN(width=16, layers=2, cutoff=6.0).eval()
    params = {"mask_ratio": 0.0, "edge_mask_ratio": 0.0, "temperature": 0.1}
    obj = OBJECTIVES["negnn_contrastive"](16, params, corpus).eval()
    idx = np.array([0, 1, 2, 5])
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        loss = float(obj.loss(enc, idx, corpus, gen, torch.device("cpu"))[0])
        z = obj.projection(enc(corpus.graphs.batch(idx)).graph).numpy()
    z = np.vstack([z, z]) / np.linalg.norm(np.vstack([z, z]), axis=1, keepdims=True)
    n = len(idx)
    total = 0.0
    for i in range(2 * n):
        denom = sum(math.exp(z[i] @ z[k] / 0.1) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(z[i] @ z[(i + n) % (2 * n)] / 0.1) / denom)
    assert loss == pytest.approx(total / (2 * n), rel=1e-4)
    # the views are supercells: more atoms than the cells (drawn from 1x1x2, 1x2x2, 2x2x2, none)
    cells_view = obj.view(idx, corpus, torch.Generator().manual_seed(3), torch.device("cpu"))
    assert len(cells_view.numbers) > int(corpus.graphs.n_atoms[idx].sum())
    # masking at 20 %: a fifth of the atoms (at least one per crystal) and about a fifth of the edges hidden
    masked = OBJECTIVES["negnn_contrastive"](16, {"supercells": False}, corpus).view(idx, corpus, gen, torch.device("cpu"))
    assert int((masked.numbers == 0).sum()) == sum(max(1, round(0.2 * int(k))) for k in corpus.graphs.n_atoms[idx])
    assert 0.1 < float(masked.edge_masked[masked.mask].float().mean()) < 0.3


def test_barlow_twins_identical_and_independent_views():
    torch.manual_seed(0)
    z = torch.randn(512, 8)
    same = barlow_twins(z, z, lambd=0.0)
    assert float(same) == pytest.approx(0.0, abs=1e-6)  # on-diagonal correlations are all 1
    independent = barlow_twins(z, torch.randn(512, 8), lambd=0.0)
    assert float(independent) == pytest.approx(8.0, rel=0.1)  # correlations ~0: sum of (1 - 0)^2
    # the off-diagonal term of identical views is the squared correlations of z with itself
    c = torch.corrcoef(z.T)
    off = float((c**2).sum() - (torch.diagonal(c) ** 2).sum())
    assert float(barlow_twins(z, z, lambd=0.5)) == pytest.approx(0.5 * off, rel=1e-3)


def test_mask_counts_and_fresh_masks(nacl, silicon, triclinic):
    graphs, _ = GraphSet.build([nacl, silicon, triclinic] * 3, 6.0, 12)
    batch = graphs.batch(np.arange(len(graphs)))
    gen = torch.Generator().manual_seed(0)
    view, masked = mask_atoms(batch, 0.15, gen, plus_one=True)
    n = batch.counts
    per_graph = torch.zeros_like(n).index_add_(0, batch.graph, masked.long())
    assert per_graph.tolist() == [min(int(0.15 * k + 1), int(k)) for k in n.tolist()]
    assert (view.numbers[masked] == 0).all() and (view.numbers[~masked] == batch.numbers[~masked]).all()
    _, again = mask_atoms(batch, 0.15, gen, plus_one=True)
    assert not torch.equal(masked, again)  # a new mask every time a crystal is seen


def test_masked_element_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    target = torch.tensor([0, 2])
    by_hand = -np.mean(
        [2.0 - math.log(sum(math.exp(v) for v in (2.0, 0.5, -1.0))), 0.3 - math.log(sum(math.exp(v) for v in (0.1, 0.2, 0.3)))]
    )
    assert float(torch.nn.functional.cross_entropy(logits, target)) == pytest.approx(by_hand)


def test_negnn_tables_and_perturbation(nacl):
    from matssl.elements import column, period

    assert (column(11), period(11)) == (1, 3) and (column(17), period(17)) == (17, 3)
    assert column(64) == 19 and period(64) == 6  # Gd: f-block
    graphs, _ = GraphSet.build([nacl], 6.0, 12)
    batch = graphs.batch(np.array([0]))
    moved = perturb_graph(batch, 0.1, 0.5, torch.Generator().manual_seed(0))
    change = (moved.vec - batch.vec).norm(dim=-1)[batch.mask]
    assert change.max() <= 1.0 + 1e-6 and change.min() > 0  # |d_j - d_i| <= 2 * 0.5 Å


def test_valence_classes():
    from matssl.objectives.dssl import stiffness_table, valence_electrons

    assert [valence_electrons(z) for z in (1, 2, 3, 6, 8, 10, 26, 30, 64)] == [1, 2, 1, 4, 6, 8, 8, 12, 3]
    table = stiffness_table(100)
    assert float(table[6]) == pytest.approx(15.55) and float(table[1]) == 0.0 and float(table[64]) == 0.0


def test_composition_similarity_takes_elements_beyond_100(nacl, device):
    """With ingest.max_z above 100 the CS loss's element sets must reach that far (they stopped at 100)."""
    crystals = [
        type(nacl)(f"heavy{k}", nacl.lattice * (1 + 0.02 * k), np.where(nacl.numbers == 11, 104, 17), nacl.frac) for k in range(4)
    ]
    graphs, _ = GraphSet.build(crystals, 6.0, 12)
    views = [v for c in crystals for v in make_views(c, AugmentConfig(n_views=2, column_replace=False), 118)]
    view_graphs, _ = GraphSet.build(views, 6.0, 12)
    views_of, _ = views_index(graphs, view_graphs)
    data = PretrainData(graphs, view_graphs, views_of, max_z=118)
    enc = CGCNN(width=16, layers=1, cutoff=6.0, max_z=118).to(device)
    obj = OBJECTIVES["crystalclr_cs"](16, {}, data).to(device)
    loss, parts = obj.loss(enc, np.arange(4), data, torch.Generator().manual_seed(0), device)
    assert torch.isfinite(loss) and "composition_similarity" in parts


def test_every_objective_is_described_in_the_report():
    from matssl.report import METHOD_INFO

    assert set(OBJECTIVES) <= set(METHOD_INFO), sorted(set(OBJECTIVES) - set(METHOD_INFO))
    assert all(title and what for title, what, _ in METHOD_INFO.values())


def test_masked_objectives_refuse_ratios_that_leave_nothing_to_predict():
    with pytest.raises(ValueError, match=r"negnn.mask_ratio: 0 is not in \(0, 1\]"):
        OBJECTIVES["negnn"].check_params({"mask_ratio": 0}, "negnn")
    with pytest.raises(ValueError, match=r"edge_mask_ratio: 1.5 is not in \[0, 1\]"):
        OBJECTIVES["negnn_contrastive"].check_params({"edge_mask_ratio": 1.5}, "m")
    OBJECTIVES["negnn_contrastive"].check_params({"mask_ratio": 0.0}, "m")  # views without masks: allowed
    with pytest.raises(ValueError, match=r"barlow.mask_ratio: 1.5 is not in \[0, 1\]"):
        OBJECTIVES["barlow"].check_params({"mask_ratio": 1.5}, "barlow")
    with pytest.raises(ValueError, match=r"c.temperature: 0 is not in \(0, inf\]: NT-Xent divides by it"):
        OBJECTIVES["crystalclr_cs"].check_params({"temperature": 0}, "c")
    with pytest.raises(ValueError, match=r"n.temperature: -0.1 is not in \(0, inf\]: NT-Xent divides by it"):
        OBJECTIVES["negnn_contrastive"].check_params({"temperature": -0.1}, "n")
    with pytest.raises(ValueError, match=r"d.micro_weight: -1.0 is not in \[0, inf\]: a loss weight"):
        OBJECTIVES["dssl"].check_params({"micro_weight": -1.0}, "d")
    OBJECTIVES["dssl"].check_params({"micro_weight": None}, "d")  # (None: the default weights)
