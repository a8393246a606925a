import numpy as np
import pytest
import torch
from torch_geometric.nn import CGConv

from matssl.encoders import CGCNN, DenseCGConv, GatedConvolution, load_encoder, save_encoder
from matssl.finetune import Regressor
from matssl.graphs import GraphSet


@pytest.fixture
def batch(nacl, silicon, triclinic):
    graphs, _ = GraphSet.build([nacl, silicon, triclinic], 6.0, 12)
    return graphs.batch(np.arange(3))


@pytest.mark.parametrize("cutoff", [6.0, 3.0])  # at 3 Å most atoms have fewer than 12 neighbours: padded slots
def test_dense_layer_equals_torch_geometric_cgconv(nacl, silicon, triclinic, cutoff, device):
    """Outputs and every gradient (input, edge features, weights) equal CGConv's, in train and eval mode."""
    graphs, _ = GraphSet.build([nacl, silicon, triclinic], cutoff, 12)
    batch = graphs.batch(np.arange(3)).to(device)
    assert (not batch.mask.all()) == (cutoff == 3.0)
    torch.manual_seed(0)
    c, e = 16, 41
    dense = DenseCGConv(c, e).to(device)
    ref = CGConv(c, dim=e, aggr="add", batch_norm=True).to(device)
    ref.load_state_dict(dense.state_dict())  # same parameter names and shapes
    x = torch.randn(len(batch.numbers), c, device=device)
    edge = torch.randn(*batch.mask.shape, e, device=device)
    centre = torch.arange(len(x), device=device)[:, None].expand_as(batch.nbr)
    m = batch.mask
    edge_index = torch.stack([batch.nbr[m], centre[m]])  # source = neighbour, target = centre
    for mode in ("train", "eval"):
        getattr(dense, mode)()
        getattr(ref, mode)()
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        e1, e2 = edge.clone().requires_grad_(), edge[m].clone().requires_grad_()
        out1, out2 = dense(x1, batch.nbr, e1, m), ref(x2, edge_index, e2)
        torch.testing.assert_close(out1, out2, rtol=1e-5, atol=1e-5)
        seed = torch.randn_like(out1)
        dense.zero_grad()
        ref.zero_grad()
        (out1 * seed).sum().backward()
        (out2 * seed).sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(e1.grad[m], e2.grad, rtol=1e-4, atol=1e-5)
        assert (e1.grad[~m] == 0).all()  # a padded slot has no influence
        for (name, p1), p2 in zip(dense.named_parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_gated_convolution_backward_is_the_derivative(batch, device):
    """The hand-written backward against finite differences, in float64, with a padded slot."""
    n, k = batch.nbr.shape
    c, e = 3, 5
    torch.manual_seed(0)
    args = [torch.randn(n, c), torch.rand(n * k, e), torch.randn(2 * c, 2 * c + e), torch.randn(2 * c)]
    args = [a.double().to(device).requires_grad_() for a in args]
    pad = torch.zeros(n, k, dtype=torch.bool, device=device)
    pad[0, -1] = True
    nbr = batch.nbr.to(device)
    # on a GPU, index_add_ sums in no fixed order: repeated backward passes may differ in the last bits
    tol = 1e-12 if device.type == "cuda" else 0.0
    assert torch.autograd.gradcheck(lambda *a: GatedConvolution.apply(*a, nbr, pad), args, nondet_tol=tol)


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


@pytest.mark.parametrize("name", ["cgcnn", "schnet"])
def test_hidden_edges_hide_their_length(batch, name):
    """NEGNN predicts a hidden edge's distance bin: no encoder may see that distance (SchNet's cosine
    envelope once read it), so scaling the hidden edges' vectors changes nothing."""
    from matssl.encoders import build_encoder

    torch.manual_seed(0)
    enc = build_encoder(name, width=16, layers=2, cutoff=6.0).eval()
    hidden = torch.zeros_like(batch.mask)
    hidden[::2] = batch.mask[::2]  # every edge of every other atom
    stretched = batch.vec.clone()
    stretched[hidden] *= 1.3
    a = enc(batch.replace(edge_masked=hidden)).node
    b = enc(batch.replace(edge_masked=hidden, vec=stretched)).node
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = enc(batch.replace(vec=stretched)).node  # visible edges: the length matters
    assert not torch.allclose(enc(batch).node, c)


def test_encoder_trains_under_bf16_autocast(batch, device):
    """The GPU path trains under bf16 autocast (`train.autocast`); on the CPU the same mechanism is checked
    with CPU autocast."""
    torch.manual_seed(0)
    model = Regressor(CGCNN(width=16, layers=2, cutoff=6.0)).to(device)
    torch.nn.init.normal_(model.head[2].weight)  # (the output layer starts at zero: outputs and gradients would be 0)
    batch = batch.to(device)
    exact = model(batch)
    assert exact.abs().min() > 0
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = model(batch)
    out.float().sum().backward()
    torch.testing.assert_close(out.float(), exact, rtol=0.05, atol=0.05)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert all(p.grad.abs().sum() > 0 for p in model.encoder.parameters() if p.requires_grad)
