"""The compiled CPU kernel (matssl/kernels) against the PyTorch code it replaces."""

import os
import warnings

import pytest
import torch

from matssl import kernels
from matssl.encoders import _gated_message_torch


@pytest.fixture
def native():
    """The kernel's library; skipped where it cannot be built, except in CI (MATSSL_REQUIRE_NATIVE=1)."""
    if kernels._library() is None:
        if os.environ.get("MATSSL_REQUIRE_NATIVE") == "1":
            pytest.fail("the CPU kernel could not be built (is a C compiler installed?)")
        pytest.skip("no C compiler: the CPU kernel is not built")


def gate_input(n=50, k=12, c=64):
    torch.manual_seed(0)
    z = torch.randn(n, k, 2 * c) * 6  # softplus' linear and exponential regimes, sigmoids near 0 and 1
    z[0, 0, :3] = torch.tensor([-120.0, 0.0, 120.0])  # exp() of these would overflow in the naive formulas
    z[0, 0, c : c + 3] = torch.tensor([-120.0, 0.0, 120.0])
    pad = torch.zeros(n, k, dtype=torch.bool)
    pad[1, 5:] = True
    pad[2] = True  # an atom with no neighbour at all
    return z, pad


@pytest.mark.parametrize("padded", [True, False])
def test_kernel_equals_pytorch(native, padded):
    z, pad = gate_input()
    pad = pad if padded else None
    z_native, z_torch = z.clone(), z.clone()
    out_native = kernels.gated_message(z_native, pad, derivatives=True)
    out_torch = _gated_message_torch(z_torch, pad, derivatives=True)
    assert out_native is not None
    torch.testing.assert_close(out_native, out_torch, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z_native, z_torch, rtol=1e-5, atol=1e-5)  # the derivatives written into z
    if padded:
        assert (z_native[pad] == 0).all() and (out_native[2] == 0).all()
    # the backward pass's first step: dz * [g | g] and its sum over neighbours
    g = torch.randn(z.shape[0], z.shape[2] // 2)
    grad_z, grad_centre = kernels.gated_message_backward(z_native, g)
    expected = z_native * g.repeat(1, 2)[:, None, :]
    torch.testing.assert_close(grad_z, expected, rtol=0, atol=0)
    torch.testing.assert_close(grad_centre, expected.sum(dim=1), rtol=1e-6, atol=1e-6)
    # without derivatives z is left alone
    z_plain = z.clone()
    torch.testing.assert_close(kernels.gated_message(z_plain, pad, derivatives=False), out_native)
    assert torch.equal(z_plain, z)


def test_kernel_result_does_not_depend_on_the_thread_count(native):
    z, pad = gate_input(n=400)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            zz = z.clone()
            results.append(
                (kernels.gated_message(zz, pad, True), zz, *kernels.gated_message_backward(zz, zz[:, 0, :64].contiguous()))
            )
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_kernel_is_only_used_where_it_applies(native):
    z, pad = gate_input(n=3)
    assert kernels.gated_message(z.double(), pad, True) is None  # float32 only (gradcheck runs float64 in PyTorch)
    assert kernels.gated_message(z.transpose(0, 1), pad, True) is None  # contiguous only
    assert kernels.gated_message_backward(z, torch.randn(3, 64).t().contiguous().t()) is None


def test_without_a_compiler_it_warns_once_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    monkeypatch.setenv("MATSSL_KERNEL_CACHE", str(tmp_path))
    kernels._library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="CPU kernel not built"):
            assert kernels.gated_message(*gate_input(n=3), True) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # cached: no second warning, no second try
            assert kernels.gated_message(*gate_input(n=3), True) is None
        assert [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == []  # no half-written library left behind
        monkeypatch.setenv("CC", "cc")
        monkeypatch.setenv("MATSSL_NATIVE", "0")
        kernels._library.cache_clear()
        assert kernels._library() is None
    finally:
        kernels._library.cache_clear()


def test_loading_the_kernel_keeps_subnormal_floats(tmp_path):
    """Linked with -ffast-math, GCC < 13 added crtfastmath.o, and loading the library switched the whole process
    to flush-to-zero: every subnormal result of torch or numpy silently became 0. A fresh build, in a fresh
    process (the flag is per thread and process)."""
    import subprocess
    import sys

    code = (
        "import numpy as np; from matssl import kernels\n"
        "lib = kernels._library()\n"
        "tiny = np.float32(1e-38) * np.float32(1e-3)\n"
        "print('built' if lib is not None else 'none', float(tiny))\n"
    )
    env = {**os.environ, "MATSSL_KERNEL_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.split()
    if out[0] == "none":
        if os.environ.get("MATSSL_REQUIRE_NATIVE") == "1":
            pytest.fail("the CPU kernel could not be built (is a C compiler installed?)")
        pytest.skip("no C compiler: the CPU kernel is not built")
    assert float(out[1]) > 0  # 1e-41 survives: no flush-to-zero
