"""The `finetune` stage: one (property, method, pretraining seed, fold, label fraction, seed) run.

Every encoder weight is copied from the pretraining stage (scratch: its random initialisation), a
fresh MLP head goes on the pooled embedding and everything trains with L1 on targets scaled by their training
median and interquartile range (for a foundation method, the same head trains alone on the model's frozen crystal
features). The head's output layer starts at zero: step 0 predicts the training median, and is validated like
every later step, so a run that cannot beat that constant on validation keeps it.
The protocol is the same for every method (`config.FinetuneOptim`): for each learning rate of the grid,
from the same initial weights, train until the validation MAE stops improving (patience, in optimiser
steps) or the step cap is reached; the learning rate and the step with the best validation MAE are
kept. The validation split comes from the run's own training subset: no test label is read before the
model is chosen. The run also scores the dummy baselines (the training subset's mean and median).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F

from matssl.config import FinetuneConfig
from matssl.encoders import Regressor, load_encoder, mlp_head
from matssl.evaluate import (
    atom_counts,
    from_model,
    label_subset,
    n_validation,
    regression_metrics,
    subset_problem,
    to_model,
    transform_labels,
)
from matssl.foundation import MODELS, read_features
from matssl.graphs import GraphSet
from matssl.io import read_json, write_json
from matssl.table import crystals_from_table, read_table, write_table
from matssl.train import Budget, Trainer, autocast, device_facts, pick_device, read_checkpoint

log = logging.getLogger(__name__)
HISTORY_POINTS = 200  # learning curves kept per run (every epoch of a small subset would be thousands)


def predict(model: torch.nn.Module, inputs: Callable[[np.ndarray], Any], pos: np.ndarray, device: torch.device,
            batch_size: int = 256) -> np.ndarray:  # fmt: skip
    """The model's outputs for the items at `pos`; `inputs(positions)` is what the model takes (a graph batch, or
    rows of frozen features), on `device`."""
    model.eval()
    out = []
    with torch.no_grad(), autocast(device):
        for i in range(0, len(pos), batch_size):
            out.append(model(inputs(pos[i : i + batch_size])).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


class FeatureRegressor(torch.nn.Module):
    """The finetuning head (as `Regressor`'s) on frozen features: a foundation model's crystal vectors."""

    def __init__(self, dim: int, head_width: int = 128):
        super().__init__()
        self.head = mlp_head(dim, head_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x).squeeze(-1)


class FoundationRegressor(torch.nn.Module):
    """The finetuning head on a foundation model's crystal features, every weight of the model training with it.
    Takes the model's own graphs; a structure it has none of (None) gets the output 0: the training median."""

    def __init__(self, name: str, head_width: int = 128):
        super().__init__()
        self.encoder = MODELS[name]()
        self.head = mlp_head(self.encoder.dim, head_width)

    def forward(self, graphs: list[Any]) -> torch.Tensor:
        device = self.head[0].weight.device
        ok = [k for k, g in enumerate(graphs) if g is not None]
        out = torch.zeros(len(graphs), device=device)
        if ok:
            x = self.head(self.encoder([graphs[k].to(device) for k in ok])).squeeze(-1)
            out = out.index_put((torch.tensor(ok, device=device),), x.to(out.dtype))
        return out


def scaling(t: np.ndarray) -> tuple[float, float]:
    """(centre, scale) of the training targets: the median and the interquartile range / 1.349 (the standard
    deviation of a normal distribution with that IQR). Robust to the long tails of properties such as exfoliation
    energies, where the standard deviation is set by a few outliers (jdft2d: 134 meV/atom, IQR / 1.349: 31).
    Falls back to the standard deviation, then 1, where the IQR is 0."""
    q25, q50, q75 = np.percentile(t, [25, 50, 75])
    return float(q50), float((q75 - q25) / 1.349) or float(np.std(t)) or 1.0


def save_model(model: torch.nn.Module, center: float, scale: float, path: Path, frozen: str | None = None,
               foundation: str | None = None) -> None:  # fmt: skip
    """The finetuned model (encoder and head, the head on `frozen` model's features, or a `foundation` model with its
    head) and the target scaling: what predictions need."""
    from matssl.encoders import encoder_name
    from matssl.io import atomic_path

    payload = {"head_width": model.head[0].out_features, "state_dict": model.state_dict(), "center": center, "scale": scale}
    if frozen:
        payload |= {"frozen": frozen, "dim": model.head[0].in_features}
    elif foundation:
        payload |= {"foundation": foundation}
    else:
        payload |= {"encoder": encoder_name(model.encoder), "hparams": model.encoder.hparams}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: no temporary name inside the bytes
        torch.save(payload, fh)


def load_model(path: str | Path) -> tuple[torch.nn.Module, float, float]:
    """(model, center, scale) of a finetuning run: predictions are from_model(model(batch) * scale + center, ...)."""
    from matssl.encoders import build_encoder

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if "frozen" in ckpt:
        model = FeatureRegressor(ckpt["dim"], ckpt["head_width"])
    elif "foundation" in ckpt:
        model = FoundationRegressor(ckpt["foundation"], ckpt["head_width"])
    else:
        model = Regressor(build_encoder(ckpt["encoder"], **ckpt["hparams"]), ckpt["head_width"])
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model, ckpt["center"], ckpt["scale"]


def thin(history: list[dict[str, float]], best_step: int) -> list[dict[str, float]]:
    """At most ~HISTORY_POINTS rows, evenly spaced, plus the best and the last."""
    every = max(1, len(history) // HISTORY_POINTS)
    return [h for k, h in enumerate(history) if k % every == 0 or h["step"] == best_step or k == len(history) - 1]


def split_subset(subset: list[str], ft: FinetuneConfig, n_train_fold: int, fraction: float) -> tuple[list[str], list[str]]:
    """(validation ids, fitting ids) of a training subset; refuses one too small for min_val of each."""
    problem = subset_problem(len(subset), n_train_fold, ft.val_fraction, ft.min_val)
    if problem:
        raise ValueError(f"label fraction {fraction:g}: {problem}")
    n_val = n_validation(len(subset), ft.val_fraction, ft.min_val)
    return subset[:n_val], subset[n_val:]


def dummy_metrics(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, dict[str, float]]:
    """The constant predictors a model has to beat: the training subset's mean and median."""
    return {
        name: regression_metrics(y_test, np.full(len(y_test), f(y_train)))
        for name, f in (("mean", np.mean), ("median", np.median))
    }


def run_finetune(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    p, up, rt = spec["params"], spec["upstream"], spec["runtime"]
    ft = FinetuneConfig.model_validate(p["finetune"])
    o = ft.optim
    torch.set_num_threads(rt.get("threads", 1))
    device = pick_device(rt.get("device", "auto"))
    graphs = GraphSet.load(Path(up["graphs"]) / "graphs.npz")
    fold = read_json(Path(up["splits"]) / "folds.json")["folds"][p["fold"]]
    df = read_table(Path(up["structures"]) / "structures.parquet", columns=["id", "numbers", p["column"]])
    y = transform_labels(df.set_index("id")[p["column"]].astype(float), p["transform"])
    # the model learns the property per atom (per_atom) and/or its log1p; every metric is in the property's values
    transform, atoms = p["transform"], pd.Series(atom_counts(df["numbers"], p.get("per_atom", "none")), index=df["id"])

    frozen, foundation = p.get("frozen"), p.get("foundation")
    if foundation:
        # the foundation model's own graphs of every structure the run reads; one it cannot convert is left out of
        # training and predicted as the training median (output 0), so that every method has the same test set
        model = FoundationRegressor(foundation, ft.head_width)
        wanted = set(label_subset(fold["train"], p["fraction"], p["seed"], p["fold"])) | set(fold["test"])
        table = read_table(Path(up["structures"]) / "structures.parquet")
        crystals = crystals_from_table(table[table["id"].isin(wanted & set(graphs.index))])
        own = dict(zip([c.id for c in crystals], model.encoder.graphs(crystals), strict=True))
        trainable = {i for i, g in own.items() if g is not None}
        converted = [own.get(i) for i in graphs.ids]
        inputs = lambda pos: [converted[k] for k in pos]  # noqa: E731
        position = graphs.subset_index
    elif frozen:
        # a foundation model's frozen crystal features. A structure it could not read is left out of training, and
        # scored with the mean feature vector (as in the probes), so that every method has the same test set
        feature_ids, features = read_features(up["features"])
        row = {i: k for k, i in enumerate(feature_ids)}
        trainable = {i for i in graphs.index if i in row}
        features_t = torch.from_numpy(np.vstack([features, features.mean(axis=0, keepdims=True)]))
        inputs = lambda pos: features_t[pos].to(device)  # noqa: E731
        position = lambda ids: np.array([row.get(i, len(feature_ids)) for i in ids], dtype=np.int64)  # noqa: E731
    else:
        trainable = graphs.index
        inputs = lambda pos: graphs.batch(pos).to(device)  # noqa: E731
        position = graphs.subset_index

    subset = [i for i in label_subset(fold["train"], p["fraction"], p["seed"], p["fold"]) if i in trainable]
    val_ids, fit_ids = split_subset(subset, ft, len(fold["train"]), p["fraction"])
    test_ids = [i for i in fold["test"] if i in graphs.index]
    if not test_ids:
        raise ValueError(f"fold {p['fold']}: no test structure has a graph")
    y_fit, y_val = y.loc[fit_ids].to_numpy(), y.loc[val_ids].to_numpy()
    a_fit, a_val, a_test = (atoms.loc[ids].to_numpy() for ids in (fit_ids, val_ids, test_ids))
    t_fit = to_model(y_fit, transform, a_fit)
    center, scale = scaling(t_fit)

    torch.manual_seed(p["seed"])
    if foundation:
        model.head = mlp_head(model.encoder.dim, ft.head_width)  # drawn by the finetuning seed, as every head
    elif frozen:
        model = FeatureRegressor(features.shape[1], ft.head_width)
    else:
        encoder = load_encoder(str(Path(up["pretrain"]) / "encoder.pt"))
        if p["random_encoder"]:  # scratch: the encoder's random start, too, is drawn by the finetuning seed
            encoder = type(encoder)(**encoder.hparams)
        model = Regressor(encoder, ft.head_width)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    fit_pos, val_pos, test_pos = (position(ids) for ids in (fit_ids, val_ids, test_ids))
    target = torch.tensor((t_fit - center) / scale, dtype=torch.float32)

    def step(idx: np.ndarray):
        pred = model(inputs(fit_pos[idx]))
        return F.l1_loss(pred.float(), target[idx].to(device)), {}

    def validate() -> float:
        return float(
            np.abs(from_model(predict(model, inputs, val_pos, device) * scale + center, transform, a_val) - y_val).mean()
        )

    # the learning-rate grid, resumable: finished rates and the best weights so far live in the checkpoint
    checkpoint = out / "checkpoint.pt"
    saved = read_checkpoint(checkpoint)
    state = saved["extra"] if saved else {"grid": [], "best_state": None}
    for k, lr in enumerate(o.lrs):
        if k < len(state["grid"]):
            continue
        model.load_state_dict(initial)
        budget = Budget(lr=lr, batch_size=o.batch_size, weight_decay=o.weight_decay, max_steps=o.max_steps,
                        patience=o.patience, warmup_steps=o.warmup_steps, cosine=True)  # fmt: skip
        trainer = Trainer(model, budget, p["seed"], device, checkpoint=checkpoint, tag=f"lr{k}", extra=lambda: state)
        history = trainer.fit(len(fit_pos), step, validate)
        if trainer.best_state is not None and all(trainer.best_score < g["val_mae"] for g in state["grid"]):
            state["best_state"] = trainer.best_state  # (a run whose validation MAE was never finite has none)
        state["grid"].append({"lr": lr, "val_mae": trainer.best_score, "best_step": trainer.best_step, "steps": trainer.step,
                              "stopped": trainer.stopped, "resumed_from_epoch": trainer.resumed_from,
                              "history": thin(history, trainer.best_step)})  # fmt: skip
        log.info("lr %g: validation MAE %.4g at step %d of %d (%s)", lr, trainer.best_score, trainer.best_step, trainer.step,
                 trainer.stopped)  # fmt: skip
    if state["best_state"] is None:
        raise ValueError(f"no learning rate of {o.lrs} gave a finite validation MAE: every run diverged (try smaller ones)")
    chosen = min(state["grid"], key=lambda g: g["val_mae"])  # the first of equals: the grid's order
    model.load_state_dict(state["best_state"])

    # only now the test labels
    pred = from_model(predict(model, inputs, test_pos, device) * scale + center, transform, a_test)
    y_test = y.loc[test_ids].to_numpy()
    metrics = regression_metrics(y_test, pred)
    result = {**metrics, "n_train": len(fit_ids), "n_val": len(val_ids), "n_test": len(test_ids), "n_train_fold": len(fold["train"]),
              "n_test_without_graph": len(fold["test"]) - len(test_ids),
              "lr": chosen["lr"], "val_mae": chosen["val_mae"], "best_step": chosen["best_step"], "steps": chosen["steps"],
              "stopped": chosen["stopped"], "hit_cap": chosen["stopped"] == "cap", "max_steps": o.max_steps,
              "dummy": dummy_metrics(np.concatenate([y_fit, y_val]), y_test), "grid": state["grid"],
              "property": p["property"], "method": p["method"], "base_method": p["base_method"],
              "pretrain_epochs": p["pretrain_epochs"], "pretrain_seed": p["pretrain_seed"], "fold": p["fold"],
              "fraction": p["fraction"], "seed": p["seed"], **device_facts(device)}  # fmt: skip
    write_json(result, out / "metrics.json")
    save_model(model.cpu(), center, scale, out / "model.pt", frozen, foundation)
    write_table(pa.Table.from_pandas(pd.DataFrame({"id": test_ids, "y_true": y_test, "y_pred": pred}), preserve_index=False),
                out / "predictions.parquet")  # fmt: skip
    checkpoint.unlink(missing_ok=True)
    log.info("finetune %s: lr %g, best step %d (%s); test MAE %.4g  RMSE %.4g  R2 %.3f", spec["key"], chosen["lr"],
             chosen["best_step"], chosen["stopped"], metrics["mae"], metrics["rmse"], metrics["r2"])  # fmt: skip
    resumed = [g["resumed_from_epoch"] for g in state["grid"] if g["resumed_from_epoch"] is not None]
    return {**device_facts(device), "mae": metrics["mae"], "resumed_from_epoch": resumed[0] if resumed else None}
