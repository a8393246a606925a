"""The training loop shared by pretraining and finetuning.

It owns what both need: the device and mixed precision, seeded batch order, the budget (epochs, or
optimiser steps with early stopping and a learning-rate schedule), an atomic checkpoint (at most once a
second, and at the end) and resuming from it, progress in the log, and (for finetuning) keeping the
weights of the best validation epoch. The caller supplies a `step(idx) -> (loss, parts)` closure.
"""

from __future__ import annotations

import ctypes
import logging
import math
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from matssl import kernels
from matssl.config import Optim
from matssl.io import InputError, atomic_path

log = logging.getLogger(__name__)

Step = Callable[[np.ndarray], tuple[torch.Tensor, dict[str, float]]]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(name)


def precision(device: torch.device) -> str:
    """The numeric mode of training on this device (see `autocast`)."""
    return "bf16-autocast" if device.type == "cuda" else "fp32"


def check_gpu_request(gpus: int, device: str) -> None:
    """A cluster job that asked for a GPU (the rule's gpu resource, under SLURM) and sees none fails: on a
    CPU it would train for hours without a word (a CPU build of torch, a partition without GPUs). A config
    that wants the CPU says `device: cpu`; outside SLURM the gpu resource is only a counter."""
    import os

    if gpus > 0 and device == "auto" and os.environ.get("SLURM_JOB_ID") and not torch.cuda.is_available():
        build = "CPU-only torch build" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}"
        raise RuntimeError(
            f"this SLURM job asked for {gpus} GPU(s) but PyTorch sees none ({build}; CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}). Install the CUDA build (MATSSL_TORCH=cuda bash "
            "scripts/setup.sh), use a GPU partition in slurm/config.yaml, or set pretrain.device / finetune.device: cpu"
        )


def device_facts(device: torch.device) -> dict[str, str]:
    """Where a job ran, for its manifest: the device, its numeric mode and, on a CPU, whether the compiled
    kernel ran (matssl.kernels; the PyTorch fallback agrees to ~1e-6, not bit for bit)."""
    facts = {"device": str(device), "precision": precision(device)}
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


def inference(
    run: Callable[[np.ndarray], torch.Tensor | tuple[torch.Tensor, ...]],
    pos: np.ndarray,
    device: torch.device,
    batch_size: int = 256,
) -> tuple[np.ndarray, ...]:
    """`run(positions)` over `pos` in batches, without gradients (bf16 autocast on a GPU): each of its outputs (a
    tensor, or a tuple of them) concatenated over the batches, float32 on the CPU. No position: one empty array."""
    outs = []
    with torch.no_grad(), autocast(device):
        for i in range(0, len(pos), batch_size):
            got = run(pos[i : i + batch_size])
            outs.append([t.float().cpu() for t in (got if isinstance(got, tuple) else (got,))])
    return tuple(torch.cat(column).numpy() for column in zip(*outs, strict=True)) if outs else (np.zeros(0),)


def batches(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True) -> list[np.ndarray]:
    """Index batches for one epoch; a last batch of a single item is dropped (batch norm needs 2)."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    out = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in out if len(b) > 1]


@dataclass(frozen=True)
class Budget:
    """How long one training run lasts and how its learning rate moves: a fixed number of epochs at a
    constant rate (pretraining), or a cap in optimiser steps with early stopping on the validation score,
    linear warm-up and cosine decay to 0 at the cap (finetuning)."""

    lr: float
    batch_size: int
    weight_decay: float = 0.0
    epochs: int | None = None
    max_steps: int | None = None
    patience: int | None = None  # stop after this many steps without a better validation score
    warmup_steps: int = 0
    cosine: bool = False

    @classmethod
    def from_optim(cls, o: Optim) -> Budget:
        return cls(lr=o.lr, batch_size=o.batch_size, weight_decay=o.weight_decay, epochs=o.epochs)

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.max_steps if self.max_steps is not None else (self.epochs or 0) * steps_per_epoch

    def lr_at(self, step: int, total: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if not self.cosine or total <= self.warmup_steps:
            return self.lr
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * (step - self.warmup_steps) / (total - self.warmup_steps)))


def finite(loss: torch.Tensor, step: int) -> float:
    """A training step's loss as a number; FloatingPointError where it is not a finite one (the training diverged)."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(
            f"the training loss is {value} at step {step} (diverged: a smaller learning rate, or an objective "
            "parameter that leaves nothing to predict)"
        )
    return value


def optimizer_step(opt: torch.optim.Optimizer, lr: float, device: torch.device, forward: Callable[[], Any]) -> Any:
    """One step of `opt` at learning rate `lr`: `forward()` (under `device`'s autocast) gives the loss, or (loss,
    parts); its gradient updates the parameters. What `forward` gave."""
    for group in opt.param_groups:
        group["lr"] = lr
    with autocast(device):
        out = forward()
    opt.zero_grad(set_to_none=True)
    (out[0] if isinstance(out, tuple) else out).backward()
    opt.step()
    return out


CHECKPOINT_EVERY_S = 1.0  # at most one checkpoint a second (an epoch of a small finetuning subset is one step)
LOG_EVERY_S = 5.0


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any] | None:
    path = Path(path)
    return torch.load(path, map_location=device, weights_only=True) if path.exists() else None


class Trainer:
    """One training run. `tag` names it inside a checkpoint shared by several runs (finetuning's learning-rate
    grid): a checkpoint with another tag is not resumed. `extra()` is saved with every checkpoint (the
    caller's own progress) and is in `read_checkpoint(...)["extra"]`."""

    def __init__(
        self,
        model: nn.Module,
        budget: Budget,
        seed: int,
        device: torch.device,
        checkpoint: str | Path | None = None,
        generator: torch.Generator | None = None,
        tag: str = "",
        extra: Callable[[], dict[str, Any]] | None = None,
    ):
        self.model = model.to(device)
        self.budget = budget
        self.seed = seed
        self.device = device
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.tag, self.extra = tag, extra
        self.gen = generator or torch.Generator().manual_seed(seed)
        self.opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_score = float("inf")
        self.best_step = 0
        self.step = 0
        # "early" (patience ran out) or "cap" (the budget ran out); a finetuning grid also records "diverged"
        self.stopped: str | None = None
        self.start_epoch = 0
        self.resumed_from: int | None = None
        self._saved_at = 0.0
        if self.checkpoint and self.checkpoint.exists():
            self._resume()

    def _resume(self) -> None:
        ckpt = read_checkpoint(self.checkpoint, self.device)
        if ckpt.get("tag", "") != self.tag:
            return  # another run's checkpoint (an earlier learning rate of the grid)
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.gen.set_state(ckpt["generator"].cpu())  # a CPU generator; map_location moved its state
        self.history = ckpt["history"]
        self.best_state, self.best_score, self.best_step = ckpt["best_state"], ckpt["best_score"], ckpt["best_step"]
        self.step, self.stopped = ckpt["step"], ckpt["stopped"]
        self.start_epoch = self.resumed_from = ckpt["epoch"]
        log.info("resumed from checkpoint after epoch %d (step %d)", self.start_epoch, self.step)

    def _save(self, epoch: int, force: bool) -> None:
        if not self.checkpoint or (not force and time.monotonic() - self._saved_at < CHECKPOINT_EVERY_S):
            return
        state = {
            "tag": self.tag,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(),
            "history": self.history,
            "best_state": self.best_state,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "step": self.step,
            "stopped": self.stopped,
            "epoch": epoch,
            "extra": self.extra() if self.extra else {},
        }
        with atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)
        self._saved_at = time.monotonic()

    def _consider(self, row: dict[str, float]) -> None:
        """Keep a validated history row, and the weights if its score is the best so far."""
        self.history.append(row)
        if row["val"] < self.best_score:
            self.best_score, self.best_step = row["val"], self.step
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def fit(
        self,
        n_items: int,
        step: Step,
        validate: Callable[[], float] | None = None,
        monitor: Callable[[], dict[str, float]] | None = None,
    ) -> list[dict[str, float]]:
        """Train within the budget. `validate()` returns a score (lower is better), called before the first step
        and after every epoch; the weights of the best one (step 0: the untrained model) are kept and loaded at the end. `monitor()` adds its values to each
        epoch's row of the history (in eval mode, without gradients)."""
        b = self.budget
        per_epoch = len(batches(n_items, b.batch_size, self.seed, 0))
        if per_epoch == 0:
            raise ValueError(f"{n_items} training items make no batch of two or more")
        total = b.total_steps(per_epoch)
        n_epochs = math.ceil(total / per_epoch)
        logged = time.monotonic()
        if validate is not None and self.step == 0 and not self.history:
            # the untrained model is a candidate too: where no step beats it on validation, it is what is kept
            self.model.eval()
            with torch.no_grad(), autocast(self.device):
                self._consider({"epoch": 0, "step": 0, "val": float(validate())})
        for epoch in range(self.start_epoch, n_epochs):
            if self.stopped:
                break
            self.model.train()
            t0, seen, sums = time.perf_counter(), 0, {}
            for idx in batches(n_items, b.batch_size, self.seed, epoch):
                if self.step >= total:
                    break
                loss, parts = optimizer_step(self.opt, b.lr_at(self.step, total), self.device, lambda idx=idx: step(idx))
                self.step += 1
                seen += len(idx)
                value = finite(loss, self.step)
                for k, v in {"loss": value, **parts}.items():
                    sums[k] = sums.get(k, 0.0) + v * len(idx)
            wall = time.perf_counter() - t0
            row = {"epoch": epoch + 1, "step": self.step, **{k: v / max(seen, 1) for k, v in sums.items()}}
            row["graphs_per_s"] = seen / wall if wall > 0 else 0.0
            if monitor is not None or validate is not None:
                self.model.eval()
                with torch.no_grad(), autocast(self.device):
                    row.update(monitor() if monitor is not None else {})
                    if validate is not None:
                        row["val"] = float(validate())
            self._consider(row) if validate is not None else self.history.append(row)
            if validate is not None and b.patience is not None and self.step - self.best_step >= b.patience:
                self.stopped = "early"
            elif self.step >= total:
                self.stopped = "cap"
            if self.stopped or epoch == self.start_epoch or time.monotonic() - logged >= LOG_EVERY_S:
                logged = time.monotonic()
                log.info(
                    "epoch %d/%d  %s%s",
                    epoch + 1,
                    n_epochs,
                    "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"),
                    f"  (stopped: {self.stopped}, best step {self.best_step})" if self.stopped and validate else "",
                )
            self._save(epoch + 1, force=self.stopped is not None)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history
