"""Foundation-model baselines: what a user would pick instead of pretraining their own encoder.

A pretrained universal interatomic potential whose weights ship inside its package (so it works offline)
gives each crystal a vector: the `foundation` stage caches it per dataset, the probes fit it like every other
representation, and a method with `objective: foundation` finetunes the same head as every other method, by
the same protocol, on these frozen features. One entry of `MODELS` per model: CHGNet (Deng et al., Nature
Machine Intelligence 5, 1031, 2023; the weights of its `chgnet` package), its crystal feature being the mean
of its atom features after the last interaction block (64 values).

Its training set (MPtrj, from Materials Project relaxations) holds Materials Project structures, so the
leakage guard cannot apply to it: a downstream test structure may have been seen in its training.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from matssl.table import Crystal, crystals_from_table, read_table, rejections_table, write_table

log = logging.getLogger(__name__)


def _chgnet() -> tuple[Callable[[list[Crystal]], np.ndarray], str]:
    """CHGNet's crystal features, and a description of what it was trained on."""
    from chgnet.model import CHGNet
    from pymatgen.core import Lattice, Structure

    model = CHGNet.load(verbose=False)
    model.eval()

    def features(crystals: list[Crystal]) -> np.ndarray:
        structures = [Structure(Lattice(c.lattice), c.numbers.tolist(), c.frac) for c in crystals]
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out = model.predict_structure(structures, task="e", return_crystal_feas=True, batch_size=len(structures))
        out = out if isinstance(out, list) else [out]
        return np.stack([np.asarray(o["crystal_fea"], dtype=np.float32) for o in out])

    return features, "MPtrj (Materials Project relaxation trajectories)"


# name -> loader of (features of a list of crystals, what the model was trained on)
MODELS: dict[str, Callable[[], tuple[Callable[[list[Crystal]], np.ndarray], str]]] = {"chgnet": _chgnet}


def featurize(crystals: list[Crystal], features: Callable[[list[Crystal]], np.ndarray], batch: int = 64,
              progress: Callable[[int], None] | None = None) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:  # fmt: skip
    """(ids, [n, d] features, rejected (id, reason)): batches, and one structure at a time where a batch fails."""
    ids, rows, rejected = [], [], []
    for k in range(0, len(crystals), batch):
        part = crystals[k : k + batch]
        try:
            x = features(part)
            ids += [c.id for c in part]
            rows.append(x)
        except Exception:  # one bad structure fails its batch: find it
            for c in part:
                try:
                    rows.append(features([c]))
                    ids.append(c.id)
                except Exception as err:
                    rejected.append((c.id, f"foundation model failed ({type(err).__name__}: {str(err)[:120]})"))
        if progress is not None:
            progress(k + len(part))
    return ids, (np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)), rejected


def run_foundation(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    p, up, rt = spec["params"], spec["upstream"], spec["runtime"]
    torch.set_num_threads(rt.get("threads", 1))
    crystals = crystals_from_table(read_table(Path(up["structures"]) / "structures.parquet"))
    features, trained_on = MODELS[p["model"]]()
    ids, x, rejected = featurize(crystals, features, progress=lambda n: log.info("%s: %d/%d", p["model"], n, len(crystals)))
    table = pa.table({"id": pa.array(ids, pa.string()),
                      "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), max(x.shape[1], 1))})  # fmt: skip
    write_table(table, out / "features.parquet")
    write_table(rejections_table(rejected), out / "rejected.parquet")
    return {"model": p["model"], "trained_on": trained_on, "dims": int(x.shape[1]), "n_structures": len(ids),
            "n_rejected": len(rejected)}  # fmt: skip


def read_features(stage_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """(ids, [n, d] float32 features) of a foundation stage."""
    col = read_table(Path(stage_dir) / "features.parquet")
    ids = col["id"].tolist()
    x = np.stack(col["features"].to_numpy()).astype(np.float32) if len(col) else np.zeros((0, 0), np.float32)
    return ids, x
