"""Graph encoders shared by every pretraining objective and by finetuning.

CGCNN (Xie & Grossman 2018) on the dense [atoms x neighbours] layout of `graphs.Batch`. One layer is
torch-geometric's `CGConv` maths (gated message sigma(z W_f) * softplus(z W_s) with z = [h_i, h_j, e_ij],
summed over neighbours, batch norm, residual) followed by a softplus, as in CGCNN. Where the speed
comes from (bench/train_throughput.py measures it against `CGConv`):

- CGCNN's own factorisation: z W = h_i W_i + h_j W_j + e_ij W_e, so every atom is projected once and
  the neighbour term is one gather, instead of a matrix product on the [edges, 2C+E] concatenation;
- the projections, the message and the sum over neighbours are one autograd node (`GatedConvolution`)
  with a written-out backward. On a CPU this step is bound by memory traffic over the [atoms,
  neighbours, 2C] tensor, not by arithmetic, so the forward pass writes the message's derivative into
  that tensor while it is still in the cache, and the backward pass is one multiplication; the
  gather's gradient is an `index_add_` (8x faster on the CPU than the `index_put_` that autograd uses
  for `x[nbr]`). On a GPU, where small batches are bound by kernel launches, one node instead of a
  dozen also saves launches;
- on a CPU, the gate's elementwise passes (sigmoid, softplus, product, sum over neighbours,
  derivatives) are one compiled pass (`matssl.kernels`, PyTorch's code below where it cannot be built);
- padded neighbour slots get a gate of exactly zero (sigma(-inf)) instead of a mask multiplication.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from matssl import kernels
from matssl.graphs import Batch, atoms_per_graph

MASK_TOKEN = 0  # atomic number 0 = a masked atom (its own learned embedding)


class GaussianExpansion(nn.Module):
    def __init__(self, cutoff: float, step: float, width: float):
        super().__init__()
        self.register_buffer("centers", torch.arange(0.0, cutoff + step / 2, step))
        self.width = width

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        t = (d[..., None] - self.centers) / self.width
        # exp(-t^2), in place; arguments below -87 would give subnormal floats (or 0), which x86 CPUs
        # compute ~10x slower: clamped there, the result changes by less than 1e-38
        return t.square_().neg_().clamp_(min=-87.0).exp_()


def _gated_message_torch(z: torch.Tensor, pad: torch.Tensor | None, derivatives: bool) -> torch.Tensor:
    """sum_k sigma(f_ik) softplus(s_ik) for z = [f | s] ([N, K, 2C]); with `derivatives`, the message's
    derivatives replace z while f and s are still in the cache, so that the backward pass is one
    multiplication instead of several passes over saved activations (kernels/gated_message.c does the
    same in one pass)."""
    c = z.shape[-1] // 2
    f, s = z[..., :c], z[..., c:]
    if pad is not None:
        f.masked_fill_(pad[..., None], -math.inf)  # gate sigma(-inf) = 0: no message, no gradient
    sig_f = torch.sigmoid(f)
    msg = F.softplus(s).mul_(sig_f)
    if derivatives:
        torch.addcmul(msg, msg, sig_f, value=-1.0, out=f)  # d/df: sigma(f) (1 - sigma(f)) softplus(s)
        s.sigmoid_().mul_(sig_f)  # d/ds: sigma(f) sigma(s)
    return msg.sum(dim=1)


class GatedConvolution(torch.autograd.Function):
    """CGConv's message passing without its batch norm, as one autograd node:

        out_i = sum over neighbour slots k of sigma(f_ik) * softplus(s_ik),
        [f, s]_ik = [x_i, x_{nbr_ik}, e_ik] @ weight.T + bias = centre_i + neighbour_{nbr_ik} + e_ik @ w_e.T,

    with centre = x @ w_i.T + bias and neighbour = x @ w_j.T (weight = [w_i | w_j | w_e]); padded slots
    contribute 0. x: [N, C]; edge: [N*K, E]; weight: [2C, 2C+E] (rows: gate f, then s: CGConv's lin_f
    and lin_s stacked); bias: [2C]; nbr: [N, K]; pad: [N, K] bool or None. Runs in the weight's dtype
    (float32) under autocast too: its in-place accumulation needs one dtype.
    """

    @staticmethod
    def forward(ctx, x, edge, weight, bias, nbr, pad):
        with torch.autocast(x.device.type, enabled=False):
            x, edge = x.to(weight.dtype), edge.to(weight.dtype)
            return GatedConvolution._forward(ctx, x, edge, weight, bias, nbr, pad)

    @staticmethod
    def _forward(ctx, x, edge, weight, bias, nbr, pad):
        n, k = nbr.shape
        c = x.shape[1]
        centre = torch.addmm(bias, x, weight[:, :c].t())  # [N, 2C]: each atom projected once
        z = x.mm(weight[:, c : 2 * c].t()).index_select(0, nbr.reshape(-1))  # [N*K, 2C]
        z.addmm_(edge, weight[:, 2 * c :].t())
        z = z.view(n, k, 2 * c).add_(centre[:, None, :])
        derivatives = any(ctx.needs_input_grad)
        out = kernels.gated_message(z, pad, derivatives)  # one compiled pass on a CPU, else PyTorch's below
        if out is None:
            out = _gated_message_torch(z, pad, derivatives)
        if derivatives:
            ctx.save_for_backward(x, edge, weight, nbr, z)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, edge, weight, nbr, dmsg_dz = ctx.saved_tensors
        n, k, c2 = dmsg_dz.shape
        c = x.shape[1]
        grad_out = grad_out.to(dmsg_dz.dtype).contiguous()
        fused = kernels.gated_message_backward(dmsg_dz, grad_out)  # one compiled pass on a CPU
        if fused is not None:
            grad_z, grad_centre = fused
        else:
            grad_z = dmsg_dz * grad_out.repeat(1, 2)[:, None, :]  # both halves feed one message
            grad_centre = grad_z.sum(dim=1)
        flat = grad_z.view(n * k, c2)
        grad_neighbour = flat.new_zeros(n, c2).index_add_(0, nbr.reshape(-1), flat)
        grad_x = grad_centre.mm(weight[:, :c]).addmm_(grad_neighbour, weight[:, c : 2 * c])
        grad_weight = torch.cat([grad_centre.t().mm(x), grad_neighbour.t().mm(x), edge.t().mm(flat).t()], dim=1)
        grad_edge = flat.mm(weight[:, 2 * c :]) if ctx.needs_input_grad[1] else None
        return grad_x, grad_edge, grad_weight, grad_centre.sum(dim=0), None, None


class DenseCGConv(nn.Module):
    """`torch_geometric.nn.CGConv(channels, dim, aggr="add", batch_norm=True)` on dense neighbours.

    Parameter names and shapes equal CGConv's (`lin_f`, `lin_s`, `bn`), so weights load both ways.
    """

    def __init__(self, channels: int, edge_dim: int):
        super().__init__()
        self.lin_f = nn.Linear(2 * channels + edge_dim, channels)
        self.lin_s = nn.Linear(2 * channels + edge_dim, channels)
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor, nbr: torch.Tensor, edge: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [N, C] atoms, nbr [N, K] neighbour indices, edge [N, K, E] features, mask [N, K] real neighbours."""
        weight = torch.cat([self.lin_f.weight, self.lin_s.weight])
        bias = torch.cat([self.lin_f.bias, self.lin_s.bias])
        # On a CPU, skip the padding pass where no slot is padded; on a GPU, asking would wait for the device.
        pad = None if mask.device.type == "cpu" and bool(mask.all()) else ~mask
        msg = GatedConvolution.apply(x, edge.reshape(-1, edge.shape[-1]), weight, bias, nbr, pad)
        return x + self.bn(msg)


@dataclass
class EncoderOutput:
    node: torch.Tensor  # [N, C] last layer
    layers: list[torch.Tensor]  # [N, C] after each layer (NEGNN's multi-scale representation)
    graph: torch.Tensor  # [B, C] mean over atoms


def mean_pool(h: torch.Tensor, graph: torch.Tensor, n_graphs: int) -> torch.Tensor:
    """Mean over each graph's atoms."""
    out = h.new_zeros(n_graphs, h.shape[1]).index_add_(0, graph, h)
    return out / atoms_per_graph(graph, n_graphs).clamp(min=1)[:, None].to(h.dtype)


class Encoder(nn.Module):
    """What every encoder shares: the element embedding (row 0 = mask token), the Gaussian distance
    expansion and the hyperparameters saved with `encoder.pt`."""

    def __init__(
        self,
        width: int = 64,
        layers: int = 3,
        cutoff: float = 8.0,
        gaussian_step: float = 0.2,
        gaussian_width: float = 0.2,
        max_z: int = 100,
    ):
        super().__init__()
        self.hparams = dict(
            width=width, layers=layers, cutoff=cutoff, gaussian_step=gaussian_step, gaussian_width=gaussian_width, max_z=max_z
        )
        self.width = width
        self.embed = nn.Embedding(max_z + 1, width)
        self.expand = GaussianExpansion(cutoff, gaussian_step, gaussian_width)

    def layer(self, conv: nn.Module, h: torch.Tensor, batch: Batch, edge: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: Batch) -> EncoderOutput:
        h = self.embed(batch.numbers)
        dist = batch.dist
        edge = self.expand(dist)
        if batch.edge_masked is not None:  # masked pretraining hides these edges: no layer may see their length
            edge = edge * (~batch.edge_masked)[..., None]
            dist = dist.masked_fill(batch.edge_masked, 0.0)  # SchNet's envelope reads dist: a constant 1 for hidden edges
        layers = []
        for conv in self.convs:
            h = self.layer(conv, h, batch, edge, dist)
            layers.append(h)
        return EncoderOutput(h, layers, mean_pool(h, batch.graph, batch.n_graphs))


class CGCNN(Encoder):
    def __init__(self, **hparams):
        super().__init__(**hparams)
        edge_dim = len(self.expand.centers)
        self.convs = nn.ModuleList(DenseCGConv(self.width, edge_dim) for _ in range(self.hparams["layers"]))

    def layer(self, conv, h, batch, edge, dist):
        return F.softplus(conv(h, batch.nbr, edge, batch.mask))


class CFConv(nn.Module):
    """SchNet's continuous-filter convolution and interaction block on dense neighbours."""

    def __init__(self, channels: int, edge_dim: int, cutoff: float):
        super().__init__()
        self.cutoff = cutoff
        self.filter = nn.Sequential(nn.Linear(edge_dim, channels), nn.Softplus(), nn.Linear(channels, channels))
        self.lin_in = nn.Linear(channels, channels, bias=False)
        self.lin_out = nn.Sequential(nn.Linear(channels, channels), nn.Softplus(), nn.Linear(channels, channels))

    def forward(self, x, nbr, edge, dist, mask):
        envelope = 0.5 * (torch.cos(dist * math.pi / self.cutoff) + 1.0) * mask  # smooth cosine cutoff
        w = self.filter(edge) * envelope[..., None]
        gathered = self.lin_in(x).index_select(0, nbr.reshape(-1)).view(*nbr.shape, -1)  # index_add_ backward
        return x + self.lin_out((gathered * w).sum(dim=1))


class SchNet(Encoder):
    """SchNet (Schütt et al. 2018) on the same graphs: a second architecture to check that a result
    is not an artefact of CGCNN."""

    def __init__(self, **hparams):
        super().__init__(**hparams)
        edge_dim, h = len(self.expand.centers), self.hparams
        self.convs = nn.ModuleList(CFConv(self.width, edge_dim, h["cutoff"]) for _ in range(h["layers"]))

    def layer(self, conv, h, batch, edge, dist):
        return conv(h, batch.nbr, edge, dist, batch.mask)


ENCODERS = {"cgcnn": CGCNN, "schnet": SchNet}


def build_encoder(name: str, **hparams: Any) -> nn.Module:
    return ENCODERS[name](**hparams)


def encoder_name(encoder: nn.Module) -> str:
    """The registry name of an encoder (what `build_encoder` takes)."""
    return next(k for k, v in ENCODERS.items() if isinstance(encoder, v))


def save_encoder(encoder: nn.Module, path: str, extra: dict[str, Any] | None = None) -> None:
    from matssl.io import atomic_path

    name = encoder_name(encoder)
    # through a file object: torch names the archive inside after a path, which would put the temporary
    # name (with its PID) into the bytes, and identical encoders would not be identical files
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save({"name": name, "hparams": encoder.hparams, "state_dict": encoder.state_dict(), **(extra or {})}, fh)


def configured(encoder: dict[str, Any], graphs: dict[str, Any], max_z: int) -> tuple[str, dict[str, Any]]:
    """(name, hparams) of the encoder a config builds, from its `encoder` and `graphs` sections and `max_z`."""
    return encoder["name"], dict(
        width=encoder["width"],
        layers=encoder["layers"],
        cutoff=graphs["cutoff"],
        gaussian_step=graphs["gaussian_step"],
        gaussian_width=graphs["gaussian_width"],
        max_z=max_z,
    )


def encoder_mismatch(path: str, name: str, hparams: dict[str, Any]) -> list[str]:
    """How the encoder saved at `path` differs from the encoder `name` with `hparams` that a config builds
    ([] when it fits): its architecture, sizes and the distance expansion and element table its inputs need."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, or one with arbitrary objects
        return [f"not a matssl encoder.pt (torch.load: {type(err).__name__})"]
    if not isinstance(ckpt, dict) or not {"name", "hparams", "state_dict"} <= set(ckpt):
        return ["not a matssl encoder.pt (no name, hparams and state_dict)"]
    out = [] if ckpt["name"] == name else [f"encoder {ckpt['name']!r} (file) vs {name!r} (config)"]
    for k, v in hparams.items():
        if ckpt["hparams"].get(k) != v:
            out.append(f"{k} {ckpt['hparams'].get(k)!r} (file) vs {v!r} (config)")
    if out or name not in ENCODERS:
        return out
    return weights_mismatch(ckpt["state_dict"], build_encoder(name, **hparams).state_dict())


def weights_mismatch(saved: dict[str, Any], expected: dict[str, torch.Tensor]) -> list[str]:
    """How saved weights differ from those of the encoder they must load into: missing or extra tensors, other
    shapes, values that are not finite numbers."""
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor) for v in saved.values()):
        return ["its state_dict is not a mapping of tensors"]
    out = []
    if missing := sorted(expected.keys() - saved.keys()):
        out.append(f"tensors missing: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if extra := sorted(saved.keys() - expected.keys()):
        out.append(f"tensors this encoder does not have: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    shapes = [
        f"{k} {tuple(saved[k].shape)} (file) vs {tuple(v.shape)} (config)"
        for k, v in expected.items()
        if k in saved and saved[k].shape != v.shape
    ]
    out += shapes[:5]
    if bad := [k for k, v in saved.items() if v.is_floating_point() and not torch.isfinite(v).all()]:
        out.append(f"weights that are not finite numbers (NaN or inf: a training that diverged?) in {', '.join(bad[:5])}")
    return out


def check_fits(path: str, encoder: dict[str, Any], graphs: dict[str, Any], max_z: int, where: str) -> None:
    """Refuse an encoder file that is not the encoder a config builds, naming every mismatch."""
    mismatch = encoder_mismatch(path, *configured(encoder, graphs, max_z))
    if mismatch:
        raise ValueError(f"{where}: {path} does not fit this config's encoder: " + "; ".join(mismatch))


def load_encoder(path: str, map_location: str | torch.device = "cpu") -> nn.Module:
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    encoder = build_encoder(ckpt["name"], **ckpt["hparams"])
    encoder.load_state_dict(ckpt["state_dict"], strict=True)  # fails on a missing or unexpected key
    return encoder
