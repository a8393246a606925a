import numpy as np
import pytest
import torch
from torch_geometric.nn import CGConv

from matssl.encoders import CGCNN, DenseCGConv, Regressor, load_encoder, save_encoder
from matssl.graphs import GraphSet


@pytest.fixture
def batch(nacl, silicon, triclinic):
    graphs, _ = GraphSet.build([nacl, silicon, triclinic], 6.0, 12)
    return graphs.batch(np.arange(3))


def test_dense_layer_equals_torch_geometric_cgconv(batch):
    torch.manual_seed(0)
    c, e = 16, 41
    dense = DenseCGConv(c, e)
    ref = CGConv(c, dim=e, aggr="add", batch_norm=True)
    ref.load_state_dict(dense.state_dict())  # same parameter names and shapes
    x = torch.randn(len(batch.numbers), c)
    edge = torch.randn(*batch.mask.shape, e)
    centre = torch.arange(len(x))[:, None].expand_as(batch.nbr)
    m = batch.mask
    edge_index = torch.stack([batch.nbr[m], centre[m]])  # source = neighbour, target = centre
    for mode in ("train", "eval"):
        getattr(dense, mode)()
        getattr(ref, mode)()
        torch.testing.assert_close(dense(x, batch.nbr, edge, m), ref(x, edge_index, edge[m]), rtol=1e-5, atol=1e-5)


def test_encoder_shapes_and_masked_token(batch):
    enc = CGCNN(width=32, layers=2, cutoff=6.0)
    out = enc(batch)
    assert out.graph.shape == (3, 32) and len(out.layers) == 2 and out.node.shape == (len(batch.numbers), 32)
    batch.numbers[0] = 0  # mask token
    assert torch.isfinite(enc(batch).graph).all()


def test_pretrained_encoder_loads_every_weight(tmp_path, batch):
    torch.manual_seed(1)
    enc = CGCNN(width=32, layers=2, cutoff=6.0)
    save_encoder(enc, str(tmp_path / "encoder.pt"))
    loaded = load_encoder(str(tmp_path / "encoder.pt"))
    model = Regressor(loaded)
    for k, v in enc.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[k], v)
    # a missing or unexpected key is an error, not a silent partial load
    ckpt = torch.load(tmp_path / "encoder.pt", weights_only=True)
    del ckpt["state_dict"]["convs.0.lin_f.weight"]
    torch.save(ckpt, tmp_path / "broken.pt")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_encoder(str(tmp_path / "broken.pt"))


def test_schnet_is_a_drop_in_encoder(tmp_path, batch):
    from matssl.encoders import SchNet

    torch.manual_seed(0)
    enc = SchNet(width=16, layers=2, cutoff=6.0)
    out = enc(batch)
    assert out.graph.shape == (3, 16) and len(out.layers) == 2
    save_encoder(enc, str(tmp_path / "s.pt"))
    assert isinstance(load_encoder(str(tmp_path / "s.pt")), SchNet)
    model = Regressor(enc)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    target = torch.tensor([1.0, -1.0, 0.5])
    first = float(torch.nn.functional.l1_loss(model(batch), target).detach())
    for _ in range(50):
        opt.zero_grad()
        torch.nn.functional.l1_loss(model(batch), target).backward()
        opt.step()
    assert float(torch.nn.functional.l1_loss(model(batch), target)) < 0.5 * first
