"""Foundation-model baselines: what a user would pick instead of pretraining their own encoder.

A pretrained universal interatomic potential whose weights ship inside its package (so it works offline)
gives each crystal a vector: the `foundation` stage caches it per dataset, the probes fit it like every other
representation, and a method with `objective: foundation` finetunes the same head as every other method, by
the same protocol, on these frozen features (`train: head`) or with every weight of the model (`train: all`: its
own graphs, made in the finetuning job). One entry of `MODELS` per model: CHGNet (Deng et al., Nature
Machine Intelligence 5, 1031, 2023; the weights of its `chgnet` package), its crystal feature being the sum
over atoms of its atom features after the last interaction block (64 values; the package's own readout for its
pretrained weights). Summed features carry the number of atoms in the cell, which the mean that matssl's graph
encoders pool with does not: each model says how it pools (`pooling`), and the report's warning on an extensive
property names the models that see the cell size.

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


class Chgnet(torch.nn.Module):
    """CHGNet with its package's pretrained weights. `graphs` converts crystals to its own graphs (None where it
    cannot: an atom without neighbours within its cutoff); `forward` gives their crystal features, trainable."""

    trained_on = "MPtrj (Materials Project relaxation trajectories)"
    dim = 64
    pooling = "sum"  # over atoms (mlp_first: the pretrained model's readout)

    def __init__(self):
        super().__init__()
        from chgnet.model import CHGNet

        self.model = CHGNet.load(verbose=False)

    def graph(self, c: Crystal) -> Any:
        """The model's own graph of a crystal; raises where it cannot make one."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.model.graph_converter(c.structure())

    def graphs(self, crystals: list[Crystal]) -> list[Any]:
        """Graphs of crystals, None for one it cannot make."""
        out = []
        for c in crystals:
            try:
                out.append(self.graph(c))
            except Exception as err:  # noqa: BLE001 (the package raises ValueError, RuntimeError, ...: any is a rejection)
                log.debug("%s: %s", c.id, err)
                out.append(None)
        return out

    def forward(self, graphs: list[Any]) -> torch.Tensor:
        """[n, dim] crystal features of converted graphs (on the model's device)."""
        return self.model(graphs, task="e", return_crystal_feas=True)["crystal_fea"]


# name -> the model's class (one entry per model whose weights ship in its package)
MODELS: dict[str, type[Chgnet]] = {"chgnet": Chgnet}


def frozen_features(name: str) -> tuple[Callable[[list[Crystal]], np.ndarray], str]:
    """(crystal features of a list of crystals, without gradients; what the model was trained on)."""
    model = MODELS[name]()
    model.eval()

    def features(crystals: list[Crystal]) -> np.ndarray:
        graphs = [model.graph(c) for c in crystals]  # (a failure names its reason: featurize records it)
        with torch.no_grad():
            return model(graphs).float().numpy()

    return features, model.trained_on


def featurize(
    crystals: list[Crystal],
    features: Callable[[list[Crystal]], np.ndarray],
    batch: int = 64,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
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
    features, trained_on = frozen_features(p["model"])
    ids, x, rejected = featurize(crystals, features, progress=lambda n: log.info("%s: %d/%d", p["model"], n, len(crystals)))
    table = pa.table(
        {"id": pa.array(ids, pa.string()), "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), max(x.shape[1], 1))}
    )
    write_table(table, out / "features.parquet")
    write_table(rejections_table(rejected), out / "rejected.parquet")
    return {
        "model": p["model"],
        "trained_on": trained_on,
        "dims": int(x.shape[1]),
        "n_structures": len(ids),
        "n_rejected": len(rejected),
    }


def read_features(stage_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """(ids, [n, d] float32 features) of a foundation stage."""
    col = read_table(Path(stage_dir) / "features.parquet")
    ids = col["id"].tolist()
    x = np.stack(col["features"].to_numpy()).astype(np.float32) if len(col) else np.zeros((0, 0), np.float32)
    return ids, x
