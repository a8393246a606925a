"""A config checked against its data and the registries: `load_config` and `parse_config`, what the workflow, the
command line and the benchmarks call.

`config.py` is the config's schema: its keys, types and the references between them, and nothing of the package
above it. What needs the rest of the package is checked here, above it: the objectives' registry and each method's
parameters, a dataset's files and label columns (and the property's values in a labels CSV), an imported encoder's
weights, Matbench's task sizes against the label fractions, the predictions' methods.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from matssl.config import (
    Config,
    ConfigError,
    FilesSource,
    MatbenchSource,
    MPSource,
    PredictConfig,
    PropertyConfig,
    parse_schema,
    read_config,
)
from matssl.encoders import check_fits
from matssl.evaluate import column_problem, subset_problem, subset_size
from matssl.objectives import OBJECTIVES
from matssl.sources import (
    MATBENCH_META,
    MATBENCH_NOT_LABELS,
    STRUCTURE_NAMES,
    STRUCTURE_SUFFIXES,
    SourceError,
    labels_csv,
    matbench_columns,
    read_labels_csv,
)
from matssl.target import Target

# The label column of each Matbench v0.1 task with crystal structures.
MATBENCH_TARGETS = {
    "matbench_jdft2d": "exfoliation_en",
    "matbench_phonons": "last phdos peak",
    "matbench_dielectric": "n",
    "matbench_log_gvrh": "log10(G_VRH)",
    "matbench_log_kvrh": "log10(K_VRH)",
    "matbench_perovskites": "e_form",
    "matbench_mp_gap": "gap pbe",
    "matbench_mp_is_metal": "is_metal",
    "matbench_mp_e_form": "e_form",
}
# Structures per Matbench v0.1 task with crystal structures (matbench.materialsproject.org), for the size check.
MATBENCH_SIZES = {
    "matbench_jdft2d": 636,
    "matbench_phonons": 1265,
    "matbench_dielectric": 4764,
    "matbench_log_gvrh": 10987,
    "matbench_log_kvrh": 10987,
    "matbench_perovskites": 18928,
    "matbench_mp_gap": 106113,
    "matbench_mp_is_metal": 106113,
    "matbench_mp_e_form": 132752,
}


def close_match(name: str, names: list[str]) -> str:
    """' (did you mean X?)' when one of `names` is spelled almost like `name` (spaces, '_', case), else ''."""

    def norm(n: str) -> str:
        return n.lower().replace(" ", "_").replace("-", "_")

    same = [n for n in names if norm(n) == norm(name)]
    close = same or difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_files(name: str, src: FilesSource) -> None:
    """A folder of structure files holds some, and its labels CSV has an `id` column."""
    folder = Path(src.path)
    if folder.is_dir() and not any(
        p.is_file() and (p.suffix.lower() in STRUCTURE_SUFFIXES or p.name in STRUCTURE_NAMES) for p in folder.glob(src.glob)
    ):
        raise ValueError(
            f"datasets.{name}: path {src.path}: no structure files matching {src.glob!r} (*.cif, *.vasp, *.poscar, POSCAR, "
            "CONTCAR)"
        )
    if src.labels is not None:
        try:
            labels_csv(src.labels, header_only=True)
        except SourceError as err:
            raise ValueError(f"datasets.{name}: {err}") from None


def check_methods(cfg: Config) -> None:
    """Every method's objective is registered, its parameters are the objective's, an imported encoder fits this
    config's, and the fingerprints a method regresses are computed."""
    for name, method in cfg.pretrain.methods.items():
        if method.objective not in OBJECTIVES:
            raise ValueError(f"pretrain.methods.{name}.objective {method.objective!r}: allowed {sorted(OBJECTIVES)}")
        obj = OBJECTIVES[method.objective]
        obj.check_params(method.params, where=f"pretrain.methods.{name}.params")
        if method.objective == "pretrained":
            check_imported(cfg, name, method.params["path"])
        for kind in obj.fingerprint_kinds(method.params):
            if kind not in cfg.fingerprints.kinds:
                raise ValueError(
                    f"pretrain.methods.{name}.params: descriptor {kind!r} is not one of fingerprints.kinds "
                    f"{cfg.fingerprints.kinds}"
                )


def check_column(cfg: Config, name: str, prop: PropertyConfig, columns_of: Callable[[str], list[str]] = matbench_columns) -> None:
    """The property's label column exists in its dataset, where that is known before ingest (a Matbench task's
    target, a labels CSV's header, the fields of a Materials Project query); a folder of structure files has
    files. Elsewhere (an extended-XYZ file's info keys) the splits job says so. `columns_of`: a Matbench file's
    columns."""
    src, where = cfg.datasets[prop.dataset], f"properties.{name}.column {prop.column!r}"
    if isinstance(src, MatbenchSource) and src.path is not None:  # the file's own columns
        try:
            columns = columns_of(src.path)
        except SourceError as err:
            raise ValueError(f"datasets.{prop.dataset}: {err}") from None
        labels = [c for c in columns if c not in (*MATBENCH_NOT_LABELS, *MATBENCH_META)]
        meta = [MATBENCH_META[c] for c in columns if c in MATBENCH_META]
        if prop.column in meta and prop.kind == "regression":
            raise ValueError(f"{where}: metadata of {src.path} (text): a classification may use it, a regression not")
        if prop.column not in labels + meta:
            raise ValueError(
                f"{where}: not a label column of {src.path}{close_match(prop.column, labels + meta)}: {labels + meta}"
            )
    elif isinstance(src, MatbenchSource):  # downloaded: Matbench's published file
        target = MATBENCH_TARGETS.get(src.task)
        if target is not None and prop.column != target:
            raise ValueError(f"{where}: the label column of {src.task} (downloaded) is {target!r}")
    elif isinstance(src, MPSource):
        if prop.column not in src.fields:
            raise ValueError(f"{where}: not one of the fields of dataset {prop.dataset!r}: {src.fields}")
    elif src.labels is not None:  # (read once: its header and the property's values)
        try:
            table = read_labels_csv(src.labels)[0]  # (without the structure table's own columns)
        except SourceError as err:
            raise ValueError(f"datasets.{prop.dataset}: {err}") from None
        columns = [c for c in table.columns if c != "id"]
        if prop.column not in columns:
            raise ValueError(f"{where}: not a column of {src.labels}{close_match(prop.column, columns)}: {columns}")
        problem = column_problem(table[prop.column], Target.of(prop.model_dump()))
        if problem:
            raise ValueError(f"properties.{name}: {src.labels}: {problem}")
    elif Path(src.path).is_dir():
        raise ValueError(f"{where}: dataset {prop.dataset!r} is a folder without `labels:` (a CSV with id and labels)")


def run_methods(cfg: Config) -> dict[str, str]:
    """The names the finetuning runs of the graph methods (an encoder of this workflow's graphs: no foundation model)
    carry, as Plan._budgets names them ('<method>-e<epochs>' for each budget of a pretrain.budgets sweep of a trained
    method), each with its method."""
    keys = {}
    for m, method in cfg.pretrain.methods.items():
        obj = OBJECTIVES[method.objective]
        if not obj.kind.has_encoder:
            continue
        keys |= {f"{m}-e{e}": m for e in cfg.pretrain.budgets} if cfg.pretrain.budgets and obj.kind.trains else {m: m}
    return keys


def check_confirmatory(cfg: Config) -> None:
    """Each comparison named beforehand is one the report makes, named as its runs are: a method pretrained on this
    workflow's graphs (not a foundation model: those are a family of their own) against scratch, or a method other
    than a control against a control of the same pretraining epochs."""
    keys = run_methods(cfg)
    controls = sorted(k for k, m in keys.items() if OBJECTIVES[cfg.pretrain.methods[m].objective].control)
    pretrained = sorted(set(keys) - {"scratch"})

    def epochs(key: str) -> int:
        return int(key.rsplit("-e", 1)[1]) if key not in cfg.pretrain.methods else cfg.method_optim(key).epochs

    for i, c in enumerate(cfg.statistics.confirmatory or []):
        where = f"statistics.confirmatory[{i}]"
        if c.method not in pretrained:
            raise ValueError(f"{where}.method {c.method!r}: one of the methods pretrained here {pretrained}")
        if c.against != "scratch" and c.against not in controls:
            raise ValueError(f"{where}.against {c.against!r}: 'scratch' or a control among the methods {controls}")
        if c.against != "scratch" and (c.method in controls or epochs(c.method) != epochs(c.against)):
            raise ValueError(
                f"{where}: {c.method!r} against {c.against!r}: a method other than a control is compared with the control "
                "of its own pretraining epochs"
            )
        if c.property is not None and c.property not in cfg.properties:
            raise ValueError(f"{where}.property {c.property!r} is not one of properties: {sorted(cfg.properties)}")


def check_predict(cfg: Config, name: str, pr: PredictConfig) -> None:
    where = f"predict.{name}"
    if name not in cfg.properties:
        raise ValueError(f"{where}: no property {name!r} (properties: {sorted(cfg.properties)})")
    if cfg.properties[name].kind == "classification":
        raise ValueError(f"{where}: predictions of a classification property are not implemented yet")
    if pr.dataset not in cfg.datasets:
        raise ValueError(f"{where}.dataset {pr.dataset!r} is not one of datasets: {sorted(cfg.datasets)}")
    keys = set(run_methods(cfg))
    if pr.method not in keys:
        raise ValueError(
            f"{where}.method {pr.method!r}: not a finetuned graph method ({sorted(keys)}; a foundation "
            "method, frozen or trained whole, does not predict new structures yet: the predict stage "
            "makes this workflow's graphs only)"
        )
    if pr.fraction is not None and pr.fraction not in cfg.finetune.fractions:
        raise ValueError(f"{where}.fraction {pr.fraction}: not one of finetune.fractions {cfg.finetune.fractions}")


def check_imported(cfg: Config, method: str, path: str) -> None:
    """An encoder trained elsewhere must be the encoder this config builds (same architecture, sizes, distance
    expansion and element table)."""
    check_fits(path, cfg.encoder.model_dump(), cfg.graphs.model_dump(), cfg.ingest.max_z, f"pretrain.methods.{method}")


def check_subset_sizes(cfg: Config, name: str, prop: PropertyConfig) -> None:
    """Every run needs min_val validation and min_val training structures. Where the dataset's size is known
    before ingest (a Matbench task), a label fraction too small for that is refused here; elsewhere the
    finetuning job refuses it with the same message."""
    src = cfg.datasets[prop.dataset]
    n = MATBENCH_SIZES.get(src.task) if isinstance(src, MatbenchSource) else None
    if n is None:
        return
    k = prop.fold_count
    n_train, ft = n * (k - 1) // k, cfg.finetune
    for f in ft.fractions:
        problem = subset_problem(subset_size(n_train, f), n_train, ft.val_fraction, ft.min_val)
        if problem:
            raise ValueError(f"finetune.fractions: {f:g} of property {name!r} ({src.task}): {problem}")


def check(cfg: Config) -> None:
    """Every check of this module, in the config's order (a ValueError naming the key at the first problem)."""
    for name, src in cfg.datasets.items():
        if isinstance(src, FilesSource):
            check_files(name, src)
    columns_of = cache(matbench_columns)  # a Matbench file read once, however many properties it labels
    for name, prop in cfg.properties.items():
        check_subset_sizes(cfg, name, prop)
        check_column(cfg, name, prop, columns_of)
    check_methods(cfg)  # (first: the predictions' and the comparisons' checks look the methods' objectives up)
    check_confirmatory(cfg)
    for name, pr in cfg.predict.items():
        check_predict(cfg, name, pr)


def parse_config(data: dict[str, Any]) -> Config:
    """A config from a mapping (a YAML file's), checked: its schema, then against its data and the registries."""
    cfg = parse_schema(data)
    try:
        check(cfg)
    except ValueError as err:
        raise ConfigError(f"invalid configuration:\n  {err}") from None
    return cfg


def load_config(path: str | Path) -> Config:
    """A config file, checked (`parse_config`); a missing file or bad YAML is a ConfigError too."""
    return parse_config(read_config(path))
