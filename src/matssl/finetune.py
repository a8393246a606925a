"""The `finetune` stage: one (property, method, fold, label fraction, seed) run.

Every encoder weight is copied from the pretraining stage (scratch: its random initialisation), a
fresh MLP head goes on the pooled embedding and everything trains with L1 on standardised targets.
Model selection is the same for every method: the epoch with the best MAE on a validation split
taken from the training subset (no test labels are seen).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F

from matssl.config import Optim
from matssl.encoders import Regressor, load_encoder
from matssl.evaluate import label_subset, regression_metrics, transform_labels
from matssl.graphs import GraphSet
from matssl.io import read_json, write_json
from matssl.table import read_table, write_table
from matssl.train import Trainer, autocast, device_facts, pick_device

log = logging.getLogger(__name__)


def predict(model: torch.nn.Module, graphs: GraphSet, pos: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad(), autocast(device):
        for i in range(0, len(pos), batch_size):
            out.append(model(graphs.batch(pos[i : i + batch_size]).to(device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def run_finetune(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    p, up, rt = spec["params"], spec["upstream"], spec["runtime"]
    ft = p["finetune"]
    torch.set_num_threads(rt.get("threads", 1))
    device = pick_device(rt.get("device", "auto"))
    graphs = GraphSet.load(Path(up["graphs"]) / "graphs.npz")
    fold = read_json(Path(up["splits"]) / "folds.json")["folds"][p["fold"]]
    df = read_table(Path(up["structures"]) / "structures.parquet", columns=["id", p["column"]])
    y = transform_labels(df.set_index("id")[p["column"]].astype(float), p["transform"])

    subset = [i for i in label_subset(fold["train"], p["fraction"], p["seed"], p["fold"]) if i in graphs.index]
    n_val = max(1, math.ceil(ft["val_fraction"] * len(subset)))
    val_ids, fit_ids = subset[:n_val], subset[n_val:]
    test_ids = [i for i in fold["test"] if i in graphs.index]
    if len(fit_ids) < 2 or not test_ids:
        raise ValueError(f"fold {p['fold']} at fraction {p['fraction']}: too few structures to train ({len(fit_ids)}) or test")
    y_fit = y.loc[fit_ids].to_numpy()
    mean, std = float(y_fit.mean()), float(y_fit.std()) or 1.0

    torch.manual_seed(p["seed"])
    model = Regressor(load_encoder(str(Path(up["pretrain"]) / "encoder.pt")), ft["head_width"])
    fit_pos, val_pos, test_pos = (graphs.subset_index(ids) for ids in (fit_ids, val_ids, test_ids))
    target = torch.tensor((y_fit - mean) / std, dtype=torch.float32)

    def step(idx: np.ndarray):
        pred = model(graphs.batch(fit_pos[idx]).to(device))
        return F.l1_loss(pred.float(), target[idx].to(device)), {}

    y_val = y.loc[val_ids].to_numpy()

    def validate() -> float:
        return float(np.abs(predict(model, graphs, val_pos, device) * std + mean - y_val).mean())

    trainer = Trainer(model, Optim(**ft["optim"]), p["seed"], device, checkpoint=out / "checkpoint.pt")
    resumed_from = trainer.resumed_from
    history = trainer.fit(len(fit_pos), step, validate)
    pred = predict(model, graphs, test_pos, device) * std + mean
    y_test = y.loc[test_ids].to_numpy()
    metrics = regression_metrics(y_test, pred)
    best = int(np.argmin([h["val"] for h in history])) + 1 if history else 0
    result = {**metrics, "n_train": len(fit_ids), "n_val": len(val_ids), "n_test": len(test_ids),
              "n_test_without_graph": len(fold["test"]) - len(test_ids), "best_epoch": best, "history": history,
              "property": p["property"], "method": p["method"], "fold": p["fold"], "fraction": p["fraction"],
              "seed": p["seed"], "device": str(device), "resumed_from_epoch": resumed_from}  # fmt: skip
    write_json(result, out / "metrics.json")
    write_table(pa.Table.from_pandas(pd.DataFrame({"id": test_ids, "y_true": y_test, "y_pred": pred}), preserve_index=False),
                out / "predictions.parquet")  # fmt: skip
    (out / "checkpoint.pt").unlink(missing_ok=True)
    log.info("finetune %s: test MAE %.4g  RMSE %.4g  R2 %.3f", spec["key"], metrics["mae"], metrics["rmse"], metrics["r2"])
    return {**device_facts(device), "mae": metrics["mae"], "resumed_from_epoch": resumed_from}
