"""The `probe` stage: how much a frozen pretrained embedding knows, next to hand-made fingerprints.

For one property, every structure with a label and a graph gets these representations:
- each pretrained encoder's graph embedding (mean over atoms of the last layer; CrystalCLR's probe),
  and for NEGNN encoders also the mean over atoms of the sum of every layer's atom embeddings (NEGNN's);
- a foundation model's frozen crystal features (a `foundation` method: CHGNet);
- fingerprint baselines on the same structures: every kind of the dataset's `fingerprints` stage
  (element-aware and geometry-only), mean-pooled over the atoms; Magpie-style statistics of element
  properties; and the eigenvalues of the sine Coulomb matrix.
Each is fitted with ridge and a random forest (scikit-learn defaults, as CrystalCLR) and kernel ridge
with a small cross-validated grid (as NEGNN) on the same label-fraction subsets of the same folds as
finetuning. Feature and target scalers are fitted on the training subset only. A classification property takes
logistic regression for ridge and a random-forest classifier (no kernel ridge), scored by ROC-AUC, accuracy and log
loss. The stage also writes
a 2-D PCA map of every method's embeddings for the report.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from matssl.elements import property_table
from matssl.encoders import load_encoder, mean_pool
from matssl.evaluate import class_codes, classification_metrics, label_subset, regression_metrics
from matssl.fingerprints import LABELS, matrix
from matssl.foundation import read_features
from matssl.graphs import GraphSet
from matssl.io import read_json
from matssl.table import read_table, write_table
from matssl.target import Target
from matssl.train import inference

log = logging.getLogger(__name__)

# Element properties of the Magpie-style statistics (pymatgen's values; missing ones get the mean).
ELEMENT_PROPERTIES = (
    "Z",
    "X",
    "row",
    "group",
    "atomic_mass",
    "atomic_radius",
    "mendeleev_no",
    "melting_point",
    "average_ionic_radius",
    "block",
)


# --------------------------------------------------------------------------- representations
def embeddings(encoder_path: Path, graphs: GraphSet, pos: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(graph embedding, mean over atoms of the per-layer sum) of structures `pos` of `graphs`."""
    encoder = load_encoder(str(encoder_path)).eval()

    def both(at: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        batch = graphs.batch(at)
        out = encoder(batch)
        return out.graph, mean_pool(torch.stack(out.layers).sum(0), batch.graph, batch.n_graphs)

    graph, layer_sum = inference(both, pos, torch.device("cpu"), batch_size)
    return graph, layer_sum


def magpie_features(numbers: list[np.ndarray]) -> np.ndarray:
    """Composition-weighted mean, mean absolute deviation, min, max and range of each element property,
    plus the number of elements (Ward et al. 2016, 'Magpie', reduced to pymatgen's element data)."""
    table = property_table(ELEMENT_PROPERTIES)
    out = np.zeros((len(numbers), 5 * len(ELEMENT_PROPERTIES) + 1))
    for s, nums in enumerate(numbers):
        counts = Counter(int(z) for z in nums)
        zs = np.fromiter(counts, int)
        w = np.fromiter(counts.values(), float)
        w /= w.sum()
        v = table[zs]  # [elements, properties]
        mean = w @ v
        out[s] = np.concatenate([mean, w @ np.abs(v - mean), v.min(0), v.max(0), np.ptp(v, axis=0), [len(zs)]])
    return out


def sine_coulomb_eigenvalues(lattice: np.ndarray, numbers: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Eigenvalues of the sine Coulomb matrix (Faber et al. 2015), largest magnitude first:
    M_ii = 0.5 Z_i^2.4, M_ij = Z_i Z_j / |sum_k a_k sin^2(pi (f_i - f_j)_k)| with a_k the lattice vectors.
    (Written out because dscribe's SineMatrix fails on current ASE; the matrix is a few lines.)"""
    z = numbers.astype(float)
    d = frac[:, None, :] - frac[None, :, :]
    dist = np.linalg.norm(np.sin(np.pi * d) ** 2 @ lattice, axis=-1)
    np.fill_diagonal(dist, 1.0)
    m = np.outer(z, z) / dist
    np.fill_diagonal(m, 0.5 * z**2.4)
    eig = np.linalg.eigvalsh(m)
    return eig[np.argsort(-np.abs(eig))]


def sine_coulomb_features(df: pd.DataFrame) -> np.ndarray:
    """Sine Coulomb eigenvalues of every row, zero-padded to the largest cell."""
    n_max = max(len(n) for n in df["numbers"])
    out = np.zeros((len(df), n_max))
    for s, (lat, nums, frac) in enumerate(zip(df["lattice"], df["numbers"], df["frac_coords"], strict=True)):
        eig = sine_coulomb_eigenvalues(np.reshape(lat, (3, 3)), np.asarray(nums), np.reshape(frac, (-1, 3)))
        out[s, : len(eig)] = eig
    return out


def mean_pooled(atoms: pa.Table, kind: str, ids: list[str]) -> np.ndarray:
    """Per-structure mean of a per-atom descriptor, rows in the order of `ids`."""
    x = matrix(atoms, kind).astype(np.float64)
    codes, uniques = pd.factorize(atoms.column("id").to_numpy(zero_copy_only=False))
    sums = np.zeros((len(uniques), x.shape[1]))
    np.add.at(sums, codes, x)
    means = sums / np.bincount(codes)[:, None]
    pos = pd.Index(uniques).get_indexer(ids)
    if (pos < 0).any():
        raise ValueError(f"no {kind} fingerprints for {np.asarray(ids)[pos < 0][:5].tolist()} ...")
    return means[pos]


# --------------------------------------------------------------------------- models
def make_model(name: str, n_features: int, seed: int, threads: int, trees: int, n_train: int):
    """A scikit-learn regressor with feature and target scaling fitted on whatever it is fitted on."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "ridge":
        reg = make_pipeline(StandardScaler(), Ridge())
    elif name == "random_forest":
        reg = make_pipeline(StandardScaler(), RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=threads))
    elif name == "kernel_ridge":
        grid = {"kernelridge__alpha": [1e-3, 1e-2, 1e-1], "kernelridge__gamma": [0.1 / n_features, 1.0 / n_features]}
        reg = GridSearchCV(
            make_pipeline(StandardScaler(), KernelRidge(kernel="rbf")),
            grid,
            cv=min(3, n_train),
            scoring="neg_mean_absolute_error",
            n_jobs=threads,
        )
    else:
        raise ValueError(f"unknown probe model {name!r}")
    return TransformedTargetRegressor(regressor=reg, transformer=StandardScaler())


def make_classifier(name: str, seed: int, threads: int, trees: int):
    """The classification probes: logistic regression for `ridge` (the L2-regularised linear model), a random-forest
    classifier for `random_forest`; None for `kernel_ridge` (no classification counterpart here)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "ridge":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if name == "random_forest":
        return make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=threads))
    return None


def class_probabilities(clf, x: np.ndarray, n_classes: int) -> np.ndarray:
    """[n, n_classes] probabilities from a fitted classifier (a class its training rows lacked: probability 0)."""
    proba = np.zeros((len(x), n_classes))
    proba[:, clf.classes_] = clf.predict_proba(x)
    return proba


def fit_rows(train: np.ndarray, model: str, cap: int, seed: int) -> np.ndarray:
    """The training rows a probe model is fitted on: all of them, except for kernel ridge above `cap` rows
    (its n x n kernels), a seeded random sub-sample of `cap`."""
    if model != "kernel_ridge" or len(train) <= cap:
        return train
    return np.sort(np.random.default_rng([seed, len(train)]).choice(train, cap, replace=False))


def pca_map(x: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    return PCA(n_components=2, random_state=0).fit_transform(StandardScaler().fit_transform(x))


# --------------------------------------------------------------------------- the stage
def representations(
    spec: dict[str, Any], graphs: GraphSet, df: pd.DataFrame
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, int]]:
    """Every representation of the rows of `df`, its family ('pretrained', 'random encoder', 'fingerprint', 'foundation
    model ...'), and per foundation model the rows it could not read."""
    p, up = spec["params"], spec["upstream"]
    reps: dict[str, np.ndarray] = {}
    family: dict[str, str] = {}
    missing: dict[str, int] = {}
    pos = graphs.subset_index(df["id"].tolist())
    for method, objective in p["methods"].items():
        graph_emb, layer_sum = embeddings(Path(up[f"pretrain:{method}"]) / "encoder.pt", graphs, pos)
        reps[method], family[method] = graph_emb, "random encoder" if objective == "scratch" else "pretrained"
        if objective == "negnn":
            reps[f"{method} (layer sum)"], family[f"{method} (layer sum)"] = layer_sum, "pretrained"
    for method, model in p.get("frozen", {}).items():  # a foundation model's crystal features
        feature_ids, x = read_features(up[f"foundation:{method}"])
        rows = pd.Index(feature_ids).get_indexer(df["id"])
        # a structure the model could not read gets the mean vector (counted in the manifest)
        reps[method] = np.where((rows >= 0)[:, None], x[rows], x.mean(axis=0))
        family[method] = f"foundation model ({model}, frozen)"
        missing[method] = int((rows < 0).sum())
    ids = df["id"].tolist()
    baselines = p["probes"]["baselines"]
    if "fingerprints" in baselines:
        for kind in p["fingerprint_kinds"]:
            atoms = pq.read_table(Path(up["fingerprints"]) / "atoms.parquet", columns=["id", kind])
            reps[f"{LABELS[kind]} (mean)"] = mean_pooled(atoms, kind, ids)
    if "magpie" in baselines:
        reps["Magpie-style"] = magpie_features([np.asarray(n) for n in df["numbers"]])
    if "sine_coulomb" in baselines:
        reps["sine Coulomb"] = sine_coulomb_features(df)
    for name in reps:
        family.setdefault(name, "fingerprint")
    return reps, family, missing


def run_probe(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    p, up, rt = spec["params"], spec["upstream"], spec["runtime"]
    threads = rt.get("threads", 1)
    torch.set_num_threads(threads)
    prop, cfg = p["property"], p["probes"]
    graphs = GraphSet.load(Path(up["graphs"]) / "graphs.npz")
    df = read_table(Path(up["structures"]) / "structures.parquet")
    splits = read_json(Path(up["splits"]) / "folds.json")
    folds, classes = splits["folds"], splits.get("classes")
    target = Target.of(prop)
    df["y"] = target.values(df[prop["column"]])
    # label subsets keep the classes' shares, drawn as in finetuning: over every labelled structure of the fold
    strata = df.set_index("id")["y"].dropna() if classes else None
    df = df[df["y"].notna() & df["id"].isin(graphs.index)].reset_index(drop=True)
    if classes:
        df["y"] = class_codes(df["y"], classes)
    reps, family, missing = representations(spec, graphs, df)
    row = {id_: k for k, id_ in enumerate(df["id"])}
    y = df["y"].to_numpy()
    # fitted on what finetuning learns (per atom, log1p), scored in the property's values
    atoms = target.atoms(df["numbers"])
    t = y if classes else target.to_model(y, atoms)

    results = []
    for fold_no in p["folds"]:
        fold = folds[fold_no]
        test = np.array([row[i] for i in fold["test"] if i in row])
        for frac in p["fractions"]:
            for seed in p["seeds"]:
                train = np.array([row[i] for i in label_subset(fold["train"], frac, seed, fold_no, strata) if i in row])
                for rep, x in reps.items():
                    for model in cfg["models"]:
                        rows = fit_rows(train, model, cfg["kernel_ridge_max_train"], seed)
                        if classes:
                            clf = make_classifier(model, seed, threads, cfg["rf_trees"])
                            if clf is None:
                                continue
                            clf.fit(x[rows], t[rows])
                            metrics = classification_metrics(y[test], class_probabilities(clf, x[test], len(classes)))
                        else:
                            reg = make_model(model, x.shape[1], seed, threads, cfg["rf_trees"], len(rows))
                            reg.fit(x[rows], t[rows])
                            metrics = regression_metrics(y[test], target.from_model(reg.predict(x[test]), atoms[test]))
                        name = "logistic" if classes and model == "ridge" else model
                        results.append(
                            {
                                "representation": rep,
                                "family": family[rep],
                                "model": name,
                                "fold": fold_no,
                                "fraction": frac,
                                "seed": seed,
                                **metrics,
                                "n_train": len(train),
                                "n_fit": len(rows),
                                "n_test": len(test),
                            }
                        )
                log.info("probe %s: fold %d, %g of labels, seed %d done", prop["name"], fold_no, frac, seed)
    write_table(pa.Table.from_pylist(results), out / "probes.parquet")

    # the 2-D map: the same random structures for every method, coloured in the report
    pick = np.random.default_rng(0).permutation(len(df))[: cfg["map_points"]]
    points = df.iloc[pick][["id", "y"]].rename(columns={"y": "label"})
    points["crystal_system"] = df["crystal_system"].iloc[pick] if "crystal_system" in df else None
    maps = []
    for method in [*p["methods"], *p.get("frozen", {})]:
        xy = pca_map(reps[method][pick]) if len(pick) > 2 else np.zeros((len(pick), 2))
        maps.append(points.assign(representation=method, x=xy[:, 0], y=xy[:, 1]))
    write_table(pa.Table.from_pandas(pd.concat(maps, ignore_index=True), preserve_index=False), out / "map.parquet")
    return {"n_structures": len(df), "representations": list(reps), "n_fits": len(results), "foundation_missing": missing}
