"""Compiled CPU kernels, built on first use with the system's C compiler, and PyTorch code where none is.

`gated_message.c`: CGCNN's gate sigma(f) * softplus(s), its sum over neighbours and its derivatives, in
one pass over the [atoms, neighbours, 2C] tensor (in PyTorch: seven operations, each a pass over ~13 MB
for a batch of 128 dielectric structures, and on a CPU this step is bound by those passes), and the
backward pass's product with the output gradient and its sum over neighbours, in one pass instead of
two. bench/train_throughput.py times training with and without them.

The shared library is compiled for this CPU (`-march=native`) into `$MATSSL_KERNEL_CACHE` (default
`~/.cache/matssl/kernels`), named by a hash of the source, the flags, the compiler and the CPU's
identity, so nodes of a cluster with different CPUs sharing a home directory each build their own. Where
there is no compiler (or it fails), the functions below return None and the caller uses PyTorch, after
one warning. `MATSSL_NATIVE=0` turns the kernels off (the tests compare both paths).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("gated_message.c")
# -ffast-math makes glibc declare its vectorised exp/log1p (libmvec); the kernel avoids every overflow. It is a
# compile flag only: on the link line GCC < 13 adds crtfastmath.o, whose constructor turns on flush-to-zero for
# the whole process when the library loads (every later subnormal float in torch or numpy would become 0).
FLAGS = ["-O3", "-ffast-math", "-march=native", "-fopenmp", "-fPIC"]
LINK = ["-shared", "-fopenmp"]
LIBS = ["-lmvec", "-lm"]


def _cpu_identity() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "matssl" / "kernels"
    return Path(os.environ.get("MATSSL_KERNEL_CACHE", default))


def _build(cc: str, lib: Path) -> None:
    """Compile (with FLAGS), then link (without -ffast-math) under temporary names, and rename into place:
    a job never loads a half-written file."""
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        obj, so = Path(tmp) / "kernel.o", Path(tmp) / "kernel.so"
        for cmd in ([cc, *FLAGS, "-c", str(SOURCE), "-o", str(obj)], [cc, *LINK, str(obj), "-o", str(so), *LIBS]):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"{cc} failed")
        os.replace(so, lib)


@functools.cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get("MATSSL_NATIVE", "1") == "0":
        return None
    cc = os.environ.get("CC", "cc")
    try:
        if shutil.which(cc) is None:
            raise RuntimeError(f"no C compiler ({cc!r}) on PATH")
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
        key = hashlib.sha256("\0".join([SOURCE.read_text(), *FLAGS, *LINK, *LIBS, version, _cpu_identity()]).encode())
        lib = _cache_dir() / f"gated_message-{key.hexdigest()[:16]}.so"
        if not lib.exists():
            lib.parent.mkdir(parents=True, exist_ok=True)
            with open(lib.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent first uses (jobs on one node) build it once
                if not lib.exists():
                    _build(cc, lib)
        so = ctypes.CDLL(str(lib))
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        warnings.warn(f"matssl: CPU kernel not built ({e}); using PyTorch operations, which are slower", stacklevel=2)
        return None
    so.gated_message.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3 + [ctypes.c_int32] * 2
    so.gated_message_backward.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3 + [ctypes.c_int32]
    so.gated_message.restype = so.gated_message_backward.restype = None
    return so


def available() -> bool:
    """Whether the compiled kernel is (or can be) built here; builds it on first call."""
    return _library() is not None


def _applies(*tensors: torch.Tensor) -> bool:
    """The kernels take contiguous float32 CPU tensors (and are built, or can be)."""
    ok = all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in tensors)
    return ok and available()


def gated_message(z: torch.Tensor, pad: torch.Tensor | None, derivatives: bool) -> torch.Tensor | None:
    """sum_j sigma(f_ij) softplus(s_ij) for z = [f | s] of shape [N, K, 2C], with the derivatives written
    into z (see gated_message.c); None where the kernel does not apply (GPU, not float32) or is missing."""
    if not _applies(z):
        return None
    n, k, c2 = z.shape
    out = z.new_empty(n, c2 // 2)
    pad = None if pad is None else pad.to(torch.bool).contiguous()  # one byte, 0 or 1: read as uint8_t; no copy of a bool mask
    pad_ptr = None if pad is None else pad.data_ptr()
    _library().gated_message(z.data_ptr(), pad_ptr, out.data_ptr(), n, k, c2 // 2, int(derivatives), torch.get_num_threads())
    return out


def gated_message_backward(dz: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """grad_z = dz * [g | g] ([N, K, 2C]) and its sum over neighbours ([N, 2C]) in one pass, for the
    derivatives dz that `gated_message` wrote and the gradient g of its output; None where it does not apply."""
    if not _applies(dz, grad_out):
        return None
    n, k, c2 = dz.shape
    grad_z, grad_centre = torch.empty_like(dz), dz.new_empty(n, c2)
    _library().gated_message_backward(
        dz.data_ptr(), grad_out.data_ptr(), grad_z.data_ptr(), grad_centre.data_ptr(), n, k, c2 // 2, torch.get_num_threads()
    )
    return grad_z, grad_centre
