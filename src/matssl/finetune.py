"""The `finetune` stage: one (property, method, pretraining seed, fold, label fraction, seed) run.

Every encoder weight is copied from the pretraining stage (scratch: its random initialisation), a
fresh MLP head goes on the pooled embedding and everything trains with L1 on targets scaled by their training
median and interquartile range (for a foundation method, the same head trains alone on the model's frozen crystal
features). The head's output layer starts at zero: step 0 predicts the training median, and is validated like
every later step, so a run that cannot beat that constant on validation keeps it. Predictions are held within the
range of the training targets in the learnt space (`Scaling`), before the inverse of the property's transform.
A classification property trains the same way with cross-entropy on one logit per class, validated on the log
loss (`Classification`); a regression is `Regression`.
The protocol is the same for every method (`config.FinetuneOptim`): for each learning rate of the grid,
from the same initial weights, train until the validation score (MAE; log loss) stops improving (patience, in
optimiser steps) or the step cap is reached; the learning rate and the step with the best validation score are
kept (`select_on_split`). The validation split comes from the run's own training subset: no test label is read
before the model is chosen. A labelled subset smaller than `finetune.small_data.below` is not split: the same
choice is made by inner k-fold cross-validation over all of it, and the run's model is the inner models averaged
(`select_by_cv`, `config.SmallData`). The run also scores the dummy baselines (the training subset's mean and
median; for a classification its class frequencies).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F

from matssl.config import FinetuneConfig, FinetuneOptim
from matssl.encoders import build_encoder, load_encoder
from matssl.evaluate import (
    class_codes,
    class_frequencies,
    classification_metrics,
    label_subset,
    log_loss,
    n_validation,
    regression_metrics,
    subset_problem,
)
from matssl.foundation import MODELS, read_features
from matssl.graphs import Batch, GraphSet
from matssl.io import InputError, read_json, write_json
from matssl.table import crystals_from_table, read_table, write_table
from matssl.target import Scaling, Target
from matssl.train import (
    Budget,
    Trainer,
    batches,
    device_facts,
    finite,
    inference,
    optimizer_step,
    pick_device,
    read_checkpoint,
)

log = logging.getLogger(__name__)
HISTORY_POINTS = 200  # learning curves kept per run (every epoch of a small subset would be thousands)


def predict(
    model: torch.nn.Module, inputs: Callable[[np.ndarray], Any], pos: np.ndarray, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """The model's outputs for the items at `pos`; `inputs(positions)` is what the model takes (a graph batch, or
    rows of frozen features), on `device`."""
    model.eval()
    return inference(lambda at: model(inputs(at)), pos, device, batch_size)[0]


def mlp_head(dim: int, head_width: int, n_out: int = 1) -> torch.nn.Sequential:
    """The finetuning head every method gets: dim -> head_width -> n_out (1, or a logit per class). Its output layer
    starts at zero, so an untrained model predicts the centre of the scaled targets (the training median, see
    `Scaling.of`; a classification then sets the bias to the log class frequencies): step 0 of every run is a
    constant predictor, the dummy, and training starts from it instead of a random offset."""
    head = torch.nn.Sequential(torch.nn.Linear(dim, head_width), torch.nn.Softplus(), torch.nn.Linear(head_width, n_out))
    torch.nn.init.zeros_(head[2].weight)
    torch.nn.init.zeros_(head[2].bias)
    return head


class Regressor(torch.nn.Module):
    """A pretrained (or fresh) encoder with an MLP head on the pooled embedding."""

    def __init__(self, encoder: torch.nn.Module, head_width: int = 128, n_out: int = 1):
        super().__init__()
        self.encoder = encoder
        self.head = mlp_head(encoder.width, head_width, n_out)

    def forward(self, batch: Batch) -> torch.Tensor:
        """[n] values, or [n, n_out] logits."""
        out = self.head(self.encoder(batch).graph)
        return out.squeeze(-1) if out.shape[-1] == 1 else out

    def saved(self) -> dict[str, Any]:
        """What `load_model` needs besides the weights to build it again."""
        from matssl.encoders import encoder_name

        return {"encoder": encoder_name(self.encoder), "hparams": self.encoder.hparams}


class FeatureRegressor(torch.nn.Module):
    """The finetuning head (as `Regressor`'s) on frozen features: a foundation model's crystal vectors."""

    def __init__(self, dim: int, head_width: int = 128, n_out: int = 1, features: str = ""):
        super().__init__()
        self.head = mlp_head(dim, head_width, n_out)
        self.features = features  # the model whose features these are

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(x)
        return out.squeeze(-1) if out.shape[-1] == 1 else out

    def saved(self) -> dict[str, Any]:
        return {"frozen": self.features, "dim": self.head[0].in_features}


class FoundationRegressor(torch.nn.Module):
    """The finetuning head on a foundation model's crystal features, every weight of the model training with it.
    Takes the model's own graphs; a structure it has none of (None) gets the constant `fallback`: 0, the training
    median, or the log class frequencies (set by the task's `start`)."""

    def __init__(self, name: str, head_width: int = 128, n_out: int = 1):
        super().__init__()
        self.name = name
        self.encoder = MODELS[name]()
        self.head = mlp_head(self.encoder.dim, head_width, n_out)
        self.register_buffer("fallback", torch.zeros(n_out))

    def saved(self) -> dict[str, Any]:
        return {"foundation": self.name}

    def forward(self, graphs: list[Any]) -> torch.Tensor:
        device, n_out = self.head[0].weight.device, self.head[2].out_features
        ok = [k for k, g in enumerate(graphs) if g is not None]
        out = self.fallback.expand(len(graphs), n_out).clone()
        if ok:
            x = self.head(self.encoder([graphs[k].to(device) for k in ok]))
            out = out.index_put((torch.tensor(ok, device=device),), x.to(out.dtype))
        return out.squeeze(-1) if n_out == 1 else out


class Averaged(torch.nn.Module):
    """The inner models of a cross-validated run (`SmallData`, `final: average`) at the chosen step: their mean output
    (the scaled target; a classification's logits)."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: Any) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)

    def saved(self) -> dict[str, Any]:
        return {"averaged": [m.saved() for m in self.members]}


def save_model(model: torch.nn.Module, scaling: Scaling, path: Path, classes: list[str] | None = None) -> None:
    """The finetuned model (what it is, `model.saved()`, and its weights) and the target scaling, or the classes its
    logits stand for: what predictions need."""
    from matssl.io import atomic_path

    head = (model.members[0] if isinstance(model, Averaged) else model).head
    payload = {
        "head_width": head[0].out_features,
        "n_out": head[2].out_features,
        "state_dict": model.state_dict(),
        "scaling": asdict(scaling),
        "classes": classes,
        **model.saved(),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: no temporary name inside the bytes
        torch.save(payload, fh)


# how each kind of finetuned model is built again from its saved payload (`saved()`), by the key that names it
REBUILD: dict[str, Callable[[dict[str, Any]], torch.nn.Module]] = {
    "averaged": lambda ck: Averaged([REBUILD[kind_of(m)]({**ck, **m}) for m in ck["averaged"]]),
    "frozen": lambda ck: FeatureRegressor(ck["dim"], ck["head_width"], ck["n_out"], ck["frozen"]),
    "foundation": lambda ck: FoundationRegressor(ck["foundation"], ck["head_width"], ck["n_out"]),
    "encoder": lambda ck: Regressor(build_encoder(ck["encoder"], **ck["hparams"]), ck["head_width"], ck["n_out"]),
}


def kind_of(saved: dict[str, Any]) -> str | None:
    """Which kind of finetuned model a saved payload is (a key of REBUILD), or None."""
    return next((key for key in REBUILD if key in saved), None)


def load_model(path: str | Path) -> tuple[torch.nn.Module, Scaling]:
    """(model, its Scaling) of a finetuning run: predictions are Target.predictions(model(batch), atoms, scaling)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if "scaling" not in ckpt:
        raise ValueError(f"{path}: a model saved without its target scaling by an older matssl: finetune it again")
    kind = kind_of(ckpt)
    if kind is None:
        raise ValueError(f"{path}: not a finetuned model of matssl (none of {sorted(REBUILD)} in it)")
    model = REBUILD[kind](ckpt)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model, Scaling(**ckpt["scaling"])


def thin(history: list[dict[str, float]], best_step: int) -> list[dict[str, float]]:
    """At most ~HISTORY_POINTS rows, evenly spaced, plus the best and the last."""
    every = max(1, len(history) // HISTORY_POINTS)
    return [h for k, h in enumerate(history) if k % every == 0 or h["step"] == best_step or k == len(history) - 1]


def split_subset(
    subset: list[str], ft: FinetuneConfig, n_train_fold: int, fraction: float, classes: pd.Series | None = None
) -> tuple[list[str], list[str]]:
    """(validation ids, fitting ids) of a training subset; refuses one too small for min_val of each. With `classes`
    (each id's class) the validation split is stratified where every class has two structures or more."""
    problem = subset_problem(len(subset), n_train_fold, ft.val_fraction, ft.min_val)
    if problem:
        raise InputError(f"label fraction {fraction:g}: {problem}")
    n_val = n_validation(len(subset), ft.val_fraction, ft.min_val)
    if classes is not None:
        of = classes.loc[subset]
        if of.value_counts().min() >= 2 and n_val >= of.nunique():
            from sklearn.model_selection import train_test_split

            val, fit = train_test_split(subset, train_size=n_val, stratify=of.to_numpy(), random_state=0)
            return list(val), list(fit)
    return subset[:n_val], subset[n_val:]


def dummy_metrics(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, dict[str, float]]:
    """The constant predictors a model has to beat: the training subset's mean and median."""
    return {
        name: regression_metrics(y_test, np.full(len(y_test), f(y_train)))
        for name, f in (("mean", np.mean), ("median", np.median))
    }


class Regression:
    """A real-valued property: L1 on targets in the model's space, scaled by their training median and IQR (`Target`);
    validated and scored in the property's values, each prediction held within the training targets' range."""

    n_out = 1
    val_key = "val_mae"

    def __init__(self, y: pd.Series, target: Target, df: pd.DataFrame):
        self.y, self.target = y, target
        self.atoms = pd.Series(target.atoms(df["numbers"]), index=df["id"])
        self.scaling = Scaling()

    def fit_on(self, fit_ids: list[str]) -> torch.Tensor:
        """The training targets, in the model's scale (and that scale, from these ids)."""
        t, self.scaling = self.target.fit(self.y.loc[fit_ids].to_numpy(), self.atoms.loc[fit_ids].to_numpy())
        return torch.tensor(t, dtype=torch.float32)

    def start(self, model: torch.nn.Module) -> None:
        """Nothing to set: the output layer starts at 0, the training median once scaled back."""

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(out.float(), target)

    def values(self, out: np.ndarray, ids: list[str]) -> tuple[np.ndarray, int]:
        """(outputs as the property's values, how many were held at the training targets' range or not a number)."""
        return self.target.predictions(out, self.atoms.loc[ids].to_numpy(), self.scaling)

    def shrink(self, out: np.ndarray, ids: list[str]) -> float:
        """The factor (1, 0.95, ..., 0) toward the median with the best validation score of outputs `out` of `ids`
        (among equals the least shrinkage), set in the scaling."""
        base, scores = self.scaling, []
        factors = np.linspace(1.0, 0.0, 21)
        for a in factors:
            self.scaling = replace(base, shrink=float(a))
            scores.append(self.val_score(out, ids))
        self.scaling = replace(base, shrink=float(factors[int(np.nanargmin(scores))]))
        return self.scaling.shrink

    def val_score(self, out: np.ndarray, ids: list[str]) -> float:
        """The validation MAE; NaN where an output is not a number, so that such weights are never chosen."""
        if np.isnan(out).any():
            return float("nan")
        return float(np.abs(self.values(out, ids)[0] - self.y.loc[ids].to_numpy()).mean())

    def score(self, out: np.ndarray, ids: list[str], train_ids: list[str]) -> tuple[dict[str, Any], pd.DataFrame]:
        """(test metrics with the dummies', the predictions table); an output that is not a number (chosen weights
        that diverge on a test structure only) held at the median and counted."""
        (pred, held), y_test = self.values(out, ids), self.y.loc[ids].to_numpy()
        metrics = regression_metrics(y_test, pred) | {
            "dummy": dummy_metrics(self.y.loc[train_ids].to_numpy(), y_test),
            "n_test_clipped": held,
        }
        return metrics, pd.DataFrame({"id": ids, "y_true": y_test, "y_pred": pred})


class Classification:
    """A class per structure: cross-entropy on logits, validated on the log loss; scored by ROC-AUC, accuracy and log
    loss, against the training class frequencies (the majority-class dummy)."""

    val_key = "val_log_loss"

    def __init__(self, y: pd.Series, classes: list[str]):
        self.classes, self.n_out = classes, len(classes)
        self.y, self.codes = y, class_codes(y, classes)
        self.scaling = Scaling()  # (the model's outputs are logits: nothing to scale)

    def fit_on(self, fit_ids: list[str]) -> torch.Tensor:
        self.prior = class_frequencies(self.codes.loc[fit_ids].to_numpy(), self.n_out)
        return torch.tensor(self.codes.loc[fit_ids].to_numpy(), dtype=torch.long)

    def start(self, model: torch.nn.Module) -> None:
        """The output layer's bias at the log class frequencies of the fitting rows: the untrained model (weights 0)
        predicts them, a constant like the dummy, as a regression's starts at the training median. A foundation
        model's fallback (a structure it cannot read) too."""
        with torch.no_grad():
            for b in (model.head[2].bias, getattr(model, "fallback", None)):
                if b is not None:
                    b.copy_(torch.as_tensor(np.log(self.prior), dtype=b.dtype))

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), target)

    def val_score(self, out: np.ndarray, ids: list[str]) -> float:
        return log_loss(self.codes.loc[ids].to_numpy(), softmax(out))

    def score(self, out: np.ndarray, ids: list[str], train_ids: list[str]) -> tuple[dict[str, Any], pd.DataFrame]:
        proba, y_test = softmax(out), self.codes.loc[ids].to_numpy()
        prior = np.tile(class_frequencies(self.codes.loc[train_ids].to_numpy(), self.n_out), (len(ids), 1))  # the dummy
        metrics = classification_metrics(y_test, proba) | {
            "classes": self.classes,
            "dummy": {"majority": classification_metrics(y_test, prior)},
        }
        names = np.array(self.classes, dtype=object)
        table = pd.DataFrame(
            {"id": ids, "y_true": names[y_test], "y_pred": names[proba.argmax(axis=1)], "proba": list(proba.astype(np.float32))}
        )
        return metrics, table


def softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=-1).numpy()


# --------------------------------------------------------------------------- what a run trains on
class Start:
    """What a run's model trains on, as its method's kind (`objectives.MethodKind`) decides: a graph encoder of this
    workflow (`EncoderStart`: pretrained here or elsewhere, or scratch's drawn at random), a foundation model's frozen
    crystal features (`FeatureStart`), or a foundation model trained whole with the head (`FoundationStart`). Chosen
    once per run (`start_of`); it says which structures can be trained on (`trainable`), where a structure is
    (`position`), what the model takes for a set of positions (`inputs`) and which model trains (`model`, built after
    the finetuning seed is set, which draws every head)."""

    def __init__(
        self,
        p: dict[str, Any],
        up: dict[str, str],
        graphs: GraphSet,
        device: torch.device,
        wanted: set[str],
        ft: FinetuneConfig,
        n_out: int,
    ):
        self.p, self.up, self.graphs, self.device, self.ft, self.n_out = p, up, graphs, device, ft, n_out
        self.trainable: Any = graphs.index
        self.position: Callable[[list[str]], np.ndarray] = graphs.subset_index

    def inputs(self, pos: np.ndarray) -> Any:
        return self.graphs.batch(pos).to(self.device)

    def model(self) -> torch.nn.Module:
        raise NotImplementedError


class EncoderStart(Start):
    def model(self) -> torch.nn.Module:
        encoder = load_encoder(str(Path(self.up["pretrain"]) / "encoder.pt"))
        if self.p["random_encoder"]:  # scratch: the encoder's random start, too, is drawn by the finetuning seed
            encoder = type(encoder)(**encoder.hparams)
        return Regressor(encoder, self.ft.head_width, self.n_out)


class FeatureStart(Start):
    """A foundation model's frozen crystal features. A structure it could not read is left out of training, and scored
    with the mean feature vector (as in the probes), so that every method has the same test set."""

    def __init__(self, p, up, graphs, device, wanted, ft, n_out):
        super().__init__(p, up, graphs, device, wanted, ft, n_out)
        feature_ids, features = read_features(up["features"])
        row = {i: k for k, i in enumerate(feature_ids)}
        self.trainable = {i for i in graphs.index if i in row}
        self.features = torch.from_numpy(np.vstack([features, features.mean(axis=0, keepdims=True)]))
        self.position = lambda ids: np.array([row.get(i, len(feature_ids)) for i in ids], dtype=np.int64)

    def inputs(self, pos: np.ndarray) -> torch.Tensor:
        return self.features[pos].to(self.device)

    def model(self) -> torch.nn.Module:
        return FeatureRegressor(self.features.shape[1], self.ft.head_width, self.n_out, self.p["frozen"])


class FoundationStart(Start):
    """A foundation model trained whole, on its own graphs of every structure the run reads (`wanted`); one it cannot
    convert is left out of training and predicted as the constant the model starts from (the training median; the
    class frequencies)."""

    def __init__(self, p, up, graphs, device, wanted, ft, n_out):
        super().__init__(p, up, graphs, device, wanted, ft, n_out)
        self.regressor = FoundationRegressor(p["foundation"], ft.head_width, n_out)
        table = read_table(Path(up["structures"]) / "structures.parquet")
        crystals = crystals_from_table(table[table["id"].isin(wanted & set(graphs.index))])
        own = dict(zip([c.id for c in crystals], self.regressor.encoder.graphs(crystals), strict=True))
        self.trainable = {i for i, g in own.items() if g is not None}
        self.converted = [own.get(i) for i in graphs.ids]

    def inputs(self, pos: np.ndarray) -> list[Any]:
        return [self.converted[k] for k in pos]

    def model(self) -> torch.nn.Module:
        # (the model's weights are its own; the head is drawn by the finetuning seed, as every head)
        self.regressor.head = mlp_head(self.regressor.encoder.dim, self.ft.head_width, self.n_out)
        return self.regressor


def start_of(p: dict[str, Any]) -> type[Start]:
    """A run's `Start`, from the parameters the plan gave it by its method's kind."""
    return FoundationStart if p.get("foundation") else FeatureStart if p.get("frozen") else EncoderStart


def lr_budget(o: FinetuneOptim, lr: float, patience: int) -> Budget:
    return Budget(
        lr=lr,
        batch_size=o.batch_size,
        weight_decay=o.weight_decay,
        max_steps=o.max_steps,
        patience=patience,
        warmup_steps=o.warmup_steps,
        cosine=True,
    )


def select_on_split(
    task,
    model: torch.nn.Module,
    inputs: Callable[[np.ndarray], Any],
    fit: tuple[np.ndarray, list[str]],
    val: tuple[np.ndarray, list[str]],
    learnt: torch.Tensor,
    ft: FinetuneConfig,
    seed: int,
    device: torch.device,
    out: Path,
) -> tuple[torch.nn.Module, dict[str, Any], list[dict[str, Any]], list[int]]:
    """For each learning rate, train on the fitting rows from the same start until the validation score stops
    improving; the best (rate, step) wins, step 0 (the untrained model) included. Resumable: finished rates and the best
    weights so far live in `out`/checkpoint.pt. (model at the chosen weights, the chosen grid row, the grid, the
    epochs runs resumed from)."""
    o, (fit_pos, _), (val_pos, val_ids) = ft.optim, fit, val
    initial = {k: v.clone() for k, v in model.state_dict().items()}

    def step(idx: np.ndarray):
        return task.loss(model(inputs(fit_pos[idx])), learnt[idx].to(device)), {}

    def validate() -> float:
        return task.val_score(predict(model, inputs, val_pos, device), val_ids)

    checkpoint = out / "checkpoint.pt"
    saved = read_checkpoint(checkpoint)
    state = saved["extra"] if saved else {"grid": [], "best_state": None}
    for k, lr in enumerate(o.lrs):
        if k < len(state["grid"]):
            continue
        model.load_state_dict(initial)
        trainer = Trainer(
            model, lr_budget(o, lr, o.patience), seed, device, checkpoint=checkpoint, tag=f"lr{k}", extra=lambda: state
        )
        try:
            history = trainer.fit(len(fit_pos), step, validate)
        except FloatingPointError as err:  # this rate diverged: its best validated weights before that still compete
            log.warning("lr %g: %s", lr, err)
            history, trainer.stopped = trainer.history, "diverged"
        if trainer.best_state is not None and all(trainer.best_score < g["val_score"] for g in state["grid"]):
            state["best_state"] = trainer.best_state  # (a run whose validation score was never finite has none)
        state["grid"].append(
            {
                "lr": lr,
                "val_score": trainer.best_score,
                "best_step": trainer.best_step,
                "steps": trainer.step,
                "stopped": trainer.stopped,
                "resumed_from_epoch": trainer.resumed_from,
                "history": thin(history, trainer.best_step),
            }
        )
        log.info(
            "lr %g: validation %s %.4g at step %d of %d (%s)",
            lr,
            task.val_key,
            trainer.best_score,
            trainer.best_step,
            trainer.step,
            trainer.stopped,
        )
    if state["best_state"] is None:
        raise InputError(f"no learning rate of {o.lrs} gave a finite validation score: every run diverged (try smaller ones)")
    chosen = min(state["grid"], key=lambda g: g["val_score"])  # the first of equals: the grid's order
    model.load_state_dict(state["best_state"])
    resumed = [g["resumed_from_epoch"] for g in state["grid"] if g["resumed_from_epoch"] is not None]
    return model, chosen, state["grid"], resumed


def train_epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    budget: Budget,
    rows: np.ndarray,
    loss_of: Callable[[torch.nn.Module, np.ndarray], torch.Tensor],
    step: int,
    stop: int,
    seed: int,
    epoch: int,
) -> int:
    """One epoch of `model` over `rows` (its batches drawn by (seed, epoch)), the learning rate by `budget`'s schedule,
    until step `stop`; the step reached. FloatingPointError where a loss is not a finite number (`train.finite`)."""
    model.train()
    for idx in batches(len(rows), budget.batch_size, seed, epoch):
        if step >= stop:
            break
        lr = budget.lr_at(step, budget.max_steps)
        loss = optimizer_step(opt, lr, next(model.parameters()).device, lambda idx=idx: loss_of(model, rows[idx]))
        step += 1
        finite(loss, step)
    return step


def inner_folds(n: int, k: int, seed: int, classes: np.ndarray | None = None) -> list[np.ndarray]:
    """The held-out positions of k inner folds over range(n), shuffled by `seed` (stratified by `classes` where every
    class has k members)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if classes is not None and pd.Series(classes).value_counts().min() >= k:
        split = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), classes)
    else:
        split = KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))
    return [held for _, held in split]


def select_by_cv(
    task,
    model: torch.nn.Module,
    inputs: Callable[[np.ndarray], Any],
    pos: np.ndarray,
    ids: list[str],
    learnt: torch.Tensor,
    ft: FinetuneConfig,
    seed: int,
    device: torch.device,
    strata: pd.Series | None,
) -> tuple[torch.nn.Module, dict[str, Any], list[dict[str, Any]]]:
    """`SmallData`'s selection on the labelled rows `ids` (at `pos`): for each learning rate, the k inner models train
    in lockstep from the same start, an epoch each at a time, and after each the out-of-fold predictions of all rows
    are scored together; the (rate, step) with the best pooled score wins, step 0 (the untrained model, the training
    median) included. Then a regression's shrinkage toward the median by its out-of-fold score, and the run's model:
    the inner models at the chosen step averaged, or one model refit on every row for the chosen steps.
    (model, the chosen grid row, the grid)."""
    o, sd = ft.optim, ft.small_data
    k = min(sd.folds, len(ids))  # (a subset smaller than the folds: leave-one-out)
    model = model.to(device)  # (the inner models are copies of it, on the device)
    held_out = inner_folds(len(ids), k, seed, None if strata is None else strata.loc[ids].to_numpy())
    fits = [np.setdiff1d(np.arange(len(ids)), held) for held in held_out]
    initial = {name: v.clone() for name, v in model.state_dict().items()}  # (not `k`: the fold count above)

    def step_of(m: torch.nn.Module, rows: np.ndarray) -> torch.Tensor:
        return task.loss(m(inputs(pos[rows])), learnt[rows].to(device))

    def out_of_fold(members: list[torch.nn.Module]) -> np.ndarray:
        parts = [predict(m, inputs, pos[held], device) for m, held in zip(members, held_out, strict=True)]
        out = np.empty((len(ids), *parts[0].shape[1:]))
        for part, held in zip(parts, held_out, strict=True):
            out[held] = part
        return out

    grid, best = [], None
    for lr in o.lrs:
        budget = lr_budget(o, lr, sd.patience)
        members = [copy.deepcopy(model) for _ in held_out]
        for m in members:
            m.load_state_dict(initial)
        opts = [torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=o.weight_decay) for m in members]
        steps = [0] * len(members)
        oof = out_of_fold(members)
        top = {"val": task.val_score(oof, ids), "step": 0, "oof": oof, "states": [copy.deepcopy(initial)] * len(members)}
        history, epoch, stopped = [{"epoch": 0, "step": 0, "val": top["val"]}], 0, None
        while stopped is None:
            before = sum(steps)
            try:
                for j, (m, opt, fit) in enumerate(zip(members, opts, fits, strict=True)):
                    steps[j] = train_epoch(m, opt, budget, fit, step_of, steps[j], o.max_steps, seed + 1_000_003 * (j + 1), epoch)
            except FloatingPointError as err:  # this rate diverged: its best pooled step before that still competes
                log.warning("lr %g: %s", lr, err)
                stopped = "diverged"
                break
            epoch += 1
            if sum(steps) == before:  # no inner model trained this epoch (each at the cap, or without a batch of two)
                stopped = "cap"
                break
            oof = out_of_fold(members)
            score, step = task.val_score(oof, ids), max(steps)
            history.append({"epoch": epoch, "step": step, "val": score})
            if score < top["val"]:
                top = {"val": score, "step": step, "oof": oof, "states": [copy.deepcopy(m.state_dict()) for m in members]}
            if step - top["step"] >= sd.patience:
                stopped = "early"
            elif min(steps) >= o.max_steps:
                stopped = "cap"
        grid.append(
            {
                "lr": lr,
                "val_score": top["val"],
                "best_step": top["step"],
                "steps": max(steps),
                "stopped": stopped,
                "resumed_from_epoch": None,
                "history": thin(history, top["step"]),
            }
        )
        log.info(
            "lr %g: %d-fold out-of-fold %s %.4g at step %d of %d (%s)",
            lr,
            k,
            task.val_key,
            top["val"],
            top["step"],
            max(steps),
            stopped,
        )
        if best is None or top["val"] < best["val"]:
            best = {**top, "lr": lr, "members": members}
    chosen = min(grid, key=lambda g: g["val_score"])  # the first of equals: the grid's order
    chosen = {**chosen, "cv_folds": k}
    if sd.shrink and isinstance(task, Regression):
        chosen["shrink"], chosen["val_score_unshrunk"] = task.shrink(best["oof"], ids), chosen["val_score"]
        chosen["val_score"] = task.val_score(best["oof"], ids)
    if sd.final == "refit":
        model.load_state_dict(initial)  # every row, the chosen rate, for the chosen steps, no validation
        budget, rows = lr_budget(o, best["lr"], sd.patience), np.arange(len(ids))
        opt = torch.optim.AdamW(model.parameters(), lr=best["lr"], weight_decay=o.weight_decay)
        step, epoch = 0, 0
        try:
            while step < best["step"]:
                step, before = train_epoch(model, opt, budget, rows, step_of, step, best["step"], seed, epoch), step
                if step == before:  # (no batch of two or more)
                    break
                epoch += 1
            return model, chosen, grid
        except FloatingPointError as err:  # the refit diverged where the inner models did not: they are the model
            log.warning("refit at lr %g: %s; the inner models at the chosen step, averaged, instead", best["lr"], err)
            chosen["refit"] = f"diverged ({err}): the inner models averaged instead"
    for m, state in zip(best["members"], best["states"], strict=True):
        m.load_state_dict(state)
    return Averaged(best["members"]), chosen, grid


def run_finetune(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    p, up, rt = spec["params"], spec["upstream"], spec["runtime"]
    ft = FinetuneConfig.model_validate(p["finetune"])
    o = ft.optim
    torch.set_num_threads(rt.get("threads", 1))
    device = pick_device(rt.get("device", "auto"))
    graphs = GraphSet.load(Path(up["graphs"]) / "graphs.npz")
    splits = read_json(Path(up["splits"]) / "folds.json")
    fold = splits["folds"][p["fold"]]
    df = read_table(Path(up["structures"]) / "structures.parquet", columns=["id", "numbers", p["column"]])
    # the property (its classes come with the splits), as the model learns it and as it is scored
    target = Target.of(p)
    values = target.values(df.set_index("id")[p["column"]])
    classes = splits.get("classes")
    task = Classification(values, classes) if classes else Regression(values, target, df)
    strata = task.y if classes else None  # label subsets and validation splits keep the classes' shares
    drawn = label_subset(fold["train"], p["fraction"], p["seed"], p["fold"], strata)  # the run's labelled subset

    start = start_of(p)(p, up, graphs, device, set(drawn) | set(fold["test"]), ft, task.n_out)
    trainable, inputs, position = start.trainable, start.inputs, start.position
    subset = [i for i in drawn if i in trainable]
    val_ids, fit_ids = split_subset(subset, ft, len(fold["train"]), p["fraction"], strata)
    test_ids = [i for i in fold["test"] if i in graphs.index]
    if not test_ids:
        raise InputError(f"fold {p['fold']}: no test structure has a graph")
    small = len(drawn) < ft.small_data.below  # (the drawn subset: every method of a cell selects the same way)
    learnt = task.fit_on(subset if small else fit_ids)  # (the targets' scaling: from the rows the model trains on)

    torch.manual_seed(p["seed"])
    model = start.model()
    task.start(model)
    if small:  # every labelled structure validates, out of fold: no split of the subset
        val_ids, fit_ids = subset, subset
        model, chosen, grid = select_by_cv(task, model, inputs, position(subset), subset, learnt, ft, p["seed"], device, strata)
        resumed = []
        selection = {
            "selection": f"{chosen['cv_folds']}-fold cross-validation ({ft.small_data.final})",
            **{k: chosen[k] for k in ("shrink", "val_score_unshrunk", "refit") if k in chosen},
        }
    else:
        model, chosen, grid, resumed = select_on_split(
            task, model, inputs, (position(fit_ids), fit_ids), (position(val_ids), val_ids), learnt, ft, p["seed"], device, out
        )
        selection = {"selection": "split"}
    test_pos = position(test_ids)

    # only now the test labels
    metrics, predictions = task.score(predict(model, inputs, test_pos, device), test_ids, subset)
    result = {
        **metrics,
        "n_train": len(fit_ids),
        "n_val": len(val_ids),
        "n_test": len(test_ids),
        "n_train_fold": len(fold["train"]),
        "n_test_without_graph": len(fold["test"]) - len(test_ids),
        "lr": chosen["lr"],
        task.val_key: chosen["val_score"],
        "best_step": chosen["best_step"],
        "steps": chosen["steps"],
        "stopped": chosen["stopped"],
        "hit_cap": chosen["stopped"] == "cap",
        "max_steps": o.max_steps,
        **selection,
        "grid": grid,
        "property": p["property"],
        "method": p["method"],
        "base_method": p["base_method"],
        "pretrain_epochs": p["pretrain_epochs"],
        "pretrain_seed": p["pretrain_seed"],
        "fold": p["fold"],
        "fraction": p["fraction"],
        "seed": p["seed"],
        **device_facts(device),
    }
    write_json(result, out / "metrics.json")
    save_model(model.cpu(), task.scaling, out / "model.pt", classes)
    write_table(pa.Table.from_pandas(predictions, preserve_index=False), out / "predictions.parquet")
    (out / "checkpoint.pt").unlink(missing_ok=True)
    shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    log.info(
        "finetune %s: lr %g, best step %d (%s); test %s", spec["key"], chosen["lr"], chosen["best_step"], chosen["stopped"], shown
    )
    return {**device_facts(device), **shown, "resumed_from_epoch": resumed[0] if resumed else None}
