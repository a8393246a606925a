"""The `predict` stage: a property's finetuned models applied to new structures.

Every finetuning run of the chosen method at the chosen label fraction (each fold, finetuning seed and
pretraining seed) predicts every structure of the dataset; the output is, per structure, the mean and the
standard deviation over those models (a screening user's uncertainty: the spread of an ensemble trained on
different folds and seeds, not a calibrated interval), in the property's values (log10 units for `transform:
log10`, else the column's unit), as the finetuning runs' own predictions.parquet. Structures the ingest or graph stage rejected
are listed in rejected.parquet with their reasons.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from matssl.finetune import load_model, predict
from matssl.graphs import GraphSet
from matssl.io import InputError
from matssl.stages import PARQUET_DIGEST, prediction_spec, spec_digest
from matssl.table import read_table, write_table
from matssl.target import Target
from matssl.train import device_facts, pick_device

log = logging.getLogger(__name__)


def ensemble(predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation) over models of [models, structures] predictions (ddof 0: one model, spread 0)."""
    return predictions.mean(axis=0), predictions.std(axis=0)


def run_predict(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    p, up, rt = spec["params"], spec["upstream"], spec["runtime"]
    torch.set_num_threads(rt.get("threads", 1))
    device = pick_device(rt.get("device", "auto"))
    graphs = GraphSet.load(Path(up["graphs"]) / "graphs.npz")
    models = sorted(v for k, v in up.items() if k.startswith("model:"))
    if not models:
        raise InputError(f"predict {p['property']}: no finetuning run of {p['method']!r} at fraction {p['fraction']}")
    pos = np.arange(len(graphs))
    df = read_table(Path(up["structures"]) / "structures.parquet")
    target = Target.of(p)
    atoms = pd.Series(target.atoms(df["numbers"]), index=df["id"]).loc[graphs.ids].to_numpy()
    preds, held = [], 0
    for d in models:
        model, scaling = load_model(Path(d) / "model.pt")
        values, n_held = target.predictions(
            predict(model.to(device), lambda at: graphs.batch(at).to(device), pos, device), atoms, scaling
        )
        preds.append(values)
        held += n_held  # outside the training targets' range, or not a number
    mu, sd = ensemble(np.stack(preds))
    table = pd.DataFrame({"id": graphs.ids, "y_pred_mean": mu, "y_pred_std": sd, "n_models": len(models)})
    if p["column"] in df:  # labels where the dataset has them (the property's values, as the predictions)
        y = target.values(df.set_index("id")[p["column"]])
        table["y_true"] = y.reindex(table["id"]).to_numpy()
    # the digest of what made it, which the copy at results/predictions/ keeps: a stale copy is re-made (stages.py)
    digest = {PARQUET_DIGEST: spec_digest(prediction_spec(spec["key"])).encode()}
    write_table(pa.Table.from_pandas(table, preserve_index=False).replace_schema_metadata(digest), out / "predictions.parquet")
    rejected = pd.concat([read_table(Path(up[k]) / "rejected.parquet").assign(stage=k) for k in ("structures", "graphs")])
    write_table(pa.Table.from_pandas(rejected.reset_index(drop=True), preserve_index=False), out / "rejected.parquet")
    log.info(
        "predict %s with %s: %d structures, %d models, %d rejected, %d model outputs held at the training targets' range",
        p["property"],
        p["method"],
        len(table),
        len(models),
        len(rejected),
        held,
    )
    return {
        **device_facts(device),
        "n_structures": len(table),
        "n_models": len(models),
        "n_rejected": len(rejected),
        "n_held": held,
    }
