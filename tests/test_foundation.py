"""The foundation-model baseline: CHGNet's crystal features, as the chgnet package computes them, frozen or trained."""

import numpy as np
import torch

from matssl.foundation import featurize, frozen_features
from matssl.table import Crystal


def test_chgnet_features_equal_a_direct_call_of_the_package(nacl, silicon):
    from chgnet.model import CHGNet
    from pymatgen.core import Lattice, Structure

    features, trained_on = frozen_features("chgnet")
    ids, x, rejected = featurize([nacl, silicon], features)
    model = CHGNet.load(verbose=False)
    direct = model.predict_structure(
        [Structure(Lattice(c.lattice), c.numbers.tolist(), c.frac) for c in (nacl, silicon)], task="e", return_crystal_feas=True
    )
    assert ids == ["nacl", "si"] and rejected == [] and "MPtrj" in trained_on
    np.testing.assert_allclose(x, np.stack([d["crystal_fea"] for d in direct]), rtol=1e-5, atol=1e-6)
    assert x.shape == (2, 64) and not np.allclose(x[0], x[1])


def test_a_structure_the_model_cannot_read_is_rejected_not_fatal(nacl):
    features, _ = frozen_features("chgnet")
    lonely = Crystal("lonely", np.eye(3) * 30.0, np.array([6]), np.zeros((1, 3)))  # no neighbour within CHGNet's cutoff
    ids, x, rejected = featurize([nacl, lonely], features)
    # CHGNet refuses an isolated atom: the batch is retried one by one and only that structure is lost
    assert ids == ["nacl"] and len(x) == 1 and rejected[0][0] == "lonely" and "foundation model failed" in rejected[0][1]


def test_finetuning_all_of_chgnet_trains_its_weights_and_keeps_unreadable_structures_at_the_median(nacl, silicon):
    from matssl.finetune import FoundationRegressor

    torch.manual_seed(0)
    model = FoundationRegressor("chgnet", head_width=8)
    lonely = Crystal("lonely", np.eye(3) * 30.0, np.array([6]), np.zeros((1, 3)))
    graphs = model.encoder.graphs([nacl, lonely, silicon])
    assert graphs[1] is None and graphs[0] is not None and graphs[2] is not None
    features, _ = frozen_features("chgnet")
    with torch.no_grad():  # the same crystal features as the frozen path, before any training
        np.testing.assert_allclose(model.encoder([graphs[0], graphs[2]]).numpy(), features([nacl, silicon]), rtol=1e-5, atol=1e-6)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(3):
        out = model(graphs)
        loss = (out - torch.tensor([1.0, 0.0, -1.0])).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert out[1] == 0  # no graph: the head's output 0, the training median once scaled back
    changed = [k for k, v in model.encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert any("atom_conv_layers" in k for k in changed)  # the interaction blocks train, not only the head
