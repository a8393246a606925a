import math

import numpy as np
import pytest
import torch

from matssl.augment import make_views
from matssl.config import AugmentConfig
from matssl.encoders import CGCNN
from matssl.graphs import GraphSet
from matssl.objectives import OBJECTIVES, PretrainData
from matssl.objectives.losses import composition_positives, composition_similarity, element_sets, nt_xent
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
    crystals = []
    for k, base in enumerate([nacl, silicon, triclinic] * 4):
        c = type(base)(f"{base.id}{k}", base.lattice * (1 + 0.03 * k), base.numbers, base.frac)
        crystals.append(c)
    graphs, _ = GraphSet.build(crystals, 6.0, 12)
    views = [v for c in crystals for v in make_views(c, AugmentConfig(n_views=3), 100)]
    view_graphs, _ = GraphSet.build(views, 6.0, 12)
    views_of, complete = views_index(graphs, view_graphs)
    assert complete.all()
    return PretrainData(graphs, view_graphs, views_of)


@pytest.mark.parametrize("name, params", [("crystalclr", {}), ("crystalclr", {"composition_similarity": True})])
def test_objective_lowers_its_loss(corpus, name, params):
    torch.manual_seed(0)
    enc = CGCNN(width=32, layers=2, cutoff=6.0)
    obj = OBJECTIVES[name](32, params, corpus)
    opt = torch.optim.Adam(list(enc.parameters()) + list(obj.parameters()), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    idx = np.arange(len(corpus.graphs))

    def loss():
        return obj.loss(enc, idx, corpus, gen, torch.device("cpu"))[0]

    torch.manual_seed(1)
    first = np.mean([float(loss()) for _ in range(5)])
    for _ in range(60):
        opt.zero_grad()
        loss().backward()
        opt.step()
    last = np.mean([float(loss()) for _ in range(5)])
    assert last < 0.8 * first
