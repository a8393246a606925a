"""The foundation-model baseline: CHGNet's crystal features, as the chgnet package computes them."""

import numpy as np

from matssl.foundation import MODELS, featurize
from matssl.table import Crystal


def test_chgnet_features_equal_a_direct_call_of_the_package(nacl, silicon):
    from chgnet.model import CHGNet
    from pymatgen.core import Lattice, Structure

    features, trained_on = MODELS["chgnet"]()
    ids, x, rejected = featurize([nacl, silicon], features)
    model = CHGNet.load(verbose=False)
    direct = model.predict_structure(
        [Structure(Lattice(c.lattice), c.numbers.tolist(), c.frac) for c in (nacl, silicon)], task="e", return_crystal_feas=True
    )
    assert ids == ["nacl", "si"] and rejected == [] and "MPtrj" in trained_on
    np.testing.assert_allclose(x, np.stack([d["crystal_fea"] for d in direct]), rtol=1e-5, atol=1e-6)
    assert x.shape == (2, 64) and not np.allclose(x[0], x[1])


def test_a_structure_the_model_cannot_read_is_rejected_not_fatal(nacl):
    features, _ = MODELS["chgnet"]()
    lonely = Crystal("lonely", np.eye(3) * 30.0, np.array([6]), np.zeros((1, 3)))  # no neighbour within CHGNet's cutoff
    ids, x, rejected = featurize([nacl, lonely], features)
    # CHGNet refuses an isolated atom: the batch is retried one by one and only that structure is lost
    assert ids == ["nacl"] and len(x) == 1 and rejected[0][0] == "lonely" and "foundation model failed" in rejected[0][1]
