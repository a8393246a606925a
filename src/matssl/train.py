"""The training loop shared by pretraining and finetuning.

It owns what both need: the device and mixed precision, seeded batch order, an atomic checkpoint after
every epoch and resuming from it, progress in the log, and (for finetuning) keeping the weights of the
best validation epoch. The caller supplies a `step(idx) -> (loss, parts)` closure.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from matssl import kernels
from matssl.config import Optim
from matssl.io import atomic_path

log = logging.getLogger(__name__)

Step = Callable[[np.ndarray], tuple[torch.Tensor, dict[str, float]]]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(name)


def device_facts(device: torch.device) -> dict[str, str]:
    """Where a job ran, for its manifest: the device and, on a CPU, whether the compiled kernel ran
    (matssl.kernels; the PyTorch fallback agrees to ~1e-6, not bit for bit)."""
    facts = {"device": str(device)}
    if device.type == "cpu":
        facts["cpu_kernel"] = "compiled" if kernels.available() else "pytorch"
    return facts


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for reuse instead of giving it back to the OS.

    A CPU training step allocates and frees tensors of ~10 MB; by default glibc returns such blocks to
    the OS, and every page of the next one faults on first touch: 13 % of a step on a 2-core machine
    (6,600 page faults per step, 180 with this; bench/train_memory.py). The peak memory is unchanged;
    the process just keeps what its peak needed until it exits. Only for training processes
    (`matssl stage pretrain|finetune|probe`); a no-op off glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    libc.mallopt(m_mmap_threshold, 1 << 30)  # blocks up to 1 GiB from the heap, not from their own mmap
    libc.mallopt(m_trim_threshold, (1 << 31) - 1)  # and the heap's free top is not handed back


def autocast(device: torch.device):
    """bf16 mixed precision on GPU only; the CPU path runs in float32."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def batches(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True) -> list[np.ndarray]:
    """Index batches for one epoch; a last batch of a single item is dropped (batch norm needs 2)."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    out = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in out if len(b) > 1]


class Trainer:
    def __init__(self, model: nn.Module, optim: Optim, seed: int, device: torch.device,
                 checkpoint: str | Path | None = None, generator: torch.Generator | None = None):  # fmt: skip
        self.model = model.to(device)
        self.cfg = optim
        self.seed = seed
        self.device = device
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.gen = generator or torch.Generator().manual_seed(seed)
        self.opt = torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_score = float("inf")
        self.start_epoch = 0
        self.resumed_from: int | None = None
        if self.checkpoint and self.checkpoint.exists():
            self._resume()

    def _resume(self) -> None:
        ckpt = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.gen.set_state(ckpt["generator"].cpu())  # a CPU generator; map_location moved its state
        self.history = ckpt["history"]
        self.best_state, self.best_score = ckpt["best_state"], ckpt["best_score"]
        self.start_epoch = self.resumed_from = ckpt["epoch"]
        log.info("resumed from checkpoint after epoch %d", self.start_epoch)

    def _save(self, epoch: int) -> None:
        if not self.checkpoint:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(),
            "history": self.history,
            "best_state": self.best_state,
            "best_score": self.best_score,
            "epoch": epoch,
        }
        with atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def fit(self, n_items: int, step: Step, validate: Callable[[], float] | None = None) -> list[dict[str, float]]:
        """Train for the configured epochs. `validate()` returns a score (lower is better); the weights
        of the best epoch are kept and loaded at the end."""
        for epoch in range(self.start_epoch, self.cfg.epochs):
            self.model.train()
            t0, seen, sums = time.perf_counter(), 0, {}
            for idx in batches(n_items, self.cfg.batch_size, self.seed, epoch):
                with autocast(self.device):
                    loss, parts = step(idx)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                seen += len(idx)
                for k, v in {"loss": float(loss.detach()), **parts}.items():
                    sums[k] = sums.get(k, 0.0) + v * len(idx)
            wall = time.perf_counter() - t0
            row = {"epoch": epoch + 1, **{k: v / max(seen, 1) for k, v in sums.items()}}
            row["graphs_per_s"] = seen / wall if wall > 0 else 0.0
            if validate is not None:
                self.model.eval()
                with torch.no_grad(), autocast(self.device):
                    row["val"] = float(validate())
                if row["val"] < self.best_score:
                    self.best_score = row["val"]
                    self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.history.append(row)
            log.info("epoch %d/%d  %s", epoch + 1, self.cfg.epochs,
                     "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))  # fmt: skip
            self._save(epoch + 1)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history
