"""Typed configuration: the single source of truth for `config.yaml` and its JSON schema.

Every model forbids unknown keys, so a typo is an error that names the key. This module is the schema and imports
nothing of the package above it; `matssl.validate.load_config` (what the workflow, the command line and the
benchmarks call) checks the rest against the data and the registries. `workflow/schemas/config.schema.json` is
generated from these models (`matssl schema`) and a test checks that the committed file is current.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from matssl.io import InputError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def each_once(v: list | None, what: str) -> list | None:
    """A list in which every value appears once (None passes)."""
    if v is not None and len(set(v)) != len(v):
        raise ValueError(f"{v}: {what}")
    return v


# --------------------------------------------------------------------------- data sources
class MatbenchSource(Strict):
    """A Matbench task: Matbench's own file (pandas split orient) or the column orient of the demo."""

    kind: Literal["matbench"]
    task: str = Field(
        description="Matbench task name, e.g. matbench_dielectric; gives ids and folds (and the download's file name)",
        pattern=r"^matbench_[a-z0-9_]+$",
    )
    path: str | None = Field(None, description="local file; when absent the task is downloaded")
    url: str | None = Field(None, description="download address (default: Matbench's published URL)")

    @model_validator(mode="after")
    def _file_exists(self) -> MatbenchSource:
        if self.path is not None and not Path(self.path).is_file():
            raise ValueError(f"path {self.path}: no such file")
        return self


class FilesSource(Strict):
    """A folder of CIF/POSCAR files with a labels CSV, or one extended-XYZ file (labels in info)."""

    kind: Literal["files"]
    path: str = Field(description="folder of structure files, or an .extxyz[.gz] file")
    labels: str | None = Field(None, description="CSV with an `id` column (file stem) and labels")
    glob: str = "*"

    @model_validator(mode="after")
    def _has_structures(self) -> FilesSource:
        folder = Path(self.path)
        if not folder.exists():
            raise ValueError(f"path {self.path}: no such file or folder")
        if folder.is_file() and not (".xyz" in folder.name or ".extxyz" in folder.name):
            raise ValueError(f"path {self.path}: a files dataset is a folder of structure files or an .extxyz[.gz] file")
        if folder.is_file() and (folder.stat().st_size == 0 or not _has_text(folder)):
            raise ValueError(f"path {self.path}: the file is empty (no structure)")
        return self


def _has_text(path: Path) -> bool:
    """Whether a (possibly gzipped) text file has anything but white space in its first MiB."""
    import gzip

    try:
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rt", errors="replace") as fh:
            return bool(fh.read(2**20).strip())
    except (OSError, EOFError) as err:
        raise ValueError(f"path {path}: cannot read the file ({type(err).__name__}: {err})") from None


class MPSource(Strict):
    """Materials Project summary search through mp-api (key from the MP_API_KEY variable)."""

    kind: Literal["mp"]
    criteria: dict[str, Any] = Field(default_factory=dict, description="summary search criteria")
    fields: list[str] = Field(
        default_factory=lambda: ["formation_energy_per_atom", "band_gap"],
        description="numeric summary fields stored as label columns",
    )
    chunk_size: int = Field(1000, gt=0)


Source = Annotated[MatbenchSource | FilesSource | MPSource, Field(discriminator="kind")]


class IngestConfig(Strict):
    max_atoms: int = Field(200, gt=0, description="structures with more sites are rejected")
    min_distance: float = Field(0.5, ge=0, description="closer atom pairs (Å) are rejected")
    max_z: int = Field(100, ge=1, le=118, description="largest supported atomic number")


class GraphConfig(Strict):
    cutoff: float = Field(8.0, gt=0, description="neighbour cutoff radius (Å)")
    max_neighbors: int = Field(12, gt=0, description="nearest neighbours kept per atom")
    gaussian_step: float = Field(0.2, gt=0, description="spacing of Gaussian distance centres (Å)")
    gaussian_width: float = Field(0.2, gt=0, description="width of the Gaussians (Å)")


class EncoderConfig(Strict):
    name: Literal["cgcnn", "schnet"] = "cgcnn"
    width: int = Field(64, gt=0)
    layers: int = Field(3, gt=0)


class AugmentConfig(Strict):
    """Cached crystal views for contrastive methods (CrystalCLR). Each augmentation is applied to
    each view independently with probability `probability`."""

    n_views: int = Field(4, ge=2, description="views stored per structure; two are drawn per epoch")
    probability: float = Field(0.5, ge=0, le=1)
    perturb: bool = True
    perturb_fraction: float = Field(0.5, gt=0, le=1, description="max shift as a fraction of d_min")
    strain: bool = True
    max_strain: float = Field(0.05, ge=0, le=0.5, description="each lattice vector x 1+U(0, max)")
    column_replace: bool = True
    supercell: bool = False
    seed: int = 0


FINGERPRINT_KINDS = ("wacsf", "soap_groups", "ead", "acsf_geometry", "soap_geometry")
RENAMED_KINDS = {"acsf": "acsf_geometry", "soap": "soap_geometry"}  # before element-aware fingerprints


class FingerprintConfig(Strict):
    """Per-atom fingerprints (matssl.fingerprints): element-aware `wacsf`, `soap_groups` and `ead`, and the
    geometry-only ablations `acsf_geometry` and `soap_geometry` (every atom one species). Each has a fixed
    length whatever the elements present."""

    kinds: list[Literal[FINGERPRINT_KINDS]] = Field(default_factory=lambda: list(FINGERPRINT_KINDS), min_length=1)
    r_cut: float = Field(6.0, gt=0)
    weight: Literal["z", "electronegativity"] = Field(
        "z", description="element weight w(Z) of wacsf and ead: the atomic number or the Pauling electronegativity"
    )
    groups: Literal["block", "electronegativity"] = Field(
        "block", description="pseudo-species of soap_groups: periodic-table block (s, p, d, f) or electronegativity bins"
    )
    group_edges: list[float] = Field(
        default_factory=lambda: [1.3, 1.9, 2.6],
        description="Pauling electronegativity bin edges of groups: electronegativity (len + 1 groups)",
    )
    soap_n_max: int = Field(6, gt=0)
    soap_l_max: int = Field(6, ge=0)
    soap_sigma: float = Field(0.5, gt=0)
    soap_groups_n_max: int = Field(3, gt=0)
    soap_groups_l_max: int = Field(4, ge=0)
    acsf_g2_eta: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.1, 0.3, 0.6, 1.0, 2.0])
    acsf_g2_rs: list[float] = Field(default_factory=lambda: [0.0, 1.5, 2.5, 3.5])
    acsf_g4: list[tuple[float, float, float]] = Field(
        default_factory=lambda: [(eta, zeta, lam) for eta in (0.005, 0.05) for zeta in (1.0, 4.0) for lam in (1.0, -1.0)],
        description="(eta, zeta, lambda) triples",
    )
    ead_rs: list[float] = Field(
        default_factory=lambda: [1.0 + 0.5 * k for k in range(10)], min_length=1, description="EAD Gaussian centres (angstrom)"
    )
    ead_alpha: float = Field(2.0, gt=0, description="EAD Gaussian exponent (1/angstrom^2)")
    ead_l_max: int = Field(3, ge=0, le=6, description="EAD angular orders 0..l_max")

    @field_validator("kinds", mode="before")
    @classmethod
    def _renamed(cls, v: Any) -> Any:
        for old, new in RENAMED_KINDS.items():
            if isinstance(v, list) and old in v:
                raise ValueError(f"'{old}' is now '{new}' (geometry only); element-aware kinds: wacsf, soap_groups, ead")
        return v

    @field_validator("kinds")
    @classmethod
    def _distinct_kinds(cls, v: list[str]) -> list[str]:
        return each_once(v, "each kind once")

    @field_validator("group_edges")
    @classmethod
    def _edges(cls, v: list[float]) -> list[float]:
        if not v or sorted(set(v)) != v:
            raise ValueError("group_edges must be a non-empty increasing list")
        return v


class Optim(Strict):
    """Pretraining: a fixed number of epochs at a constant learning rate."""

    epochs: int = Field(20, ge=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class FinetuneOptim(Strict):
    """Finetuning, the same rule for every method (scratch included): for each learning rate of the grid, train
    until the validation MAE has not improved for `patience` optimiser steps or `max_steps` is reached (linear
    warm-up, then cosine decay to 0 at `max_steps`); keep the weights of the best validation step, and of the
    learning rate with the best validation MAE. A budget in steps, not epochs: a 45-structure subset gets as
    many updates as a 4,000-structure one."""

    batch_size: int = Field(64, gt=0)
    lrs: list[float] = Field(default_factory=lambda: [3e-4, 1e-3, 3e-3], description="grid, chosen on validation MAE")
    weight_decay: float = Field(0.0, ge=0)
    max_steps: int = Field(3000, gt=0, description="cap on optimiser steps per learning rate")
    patience: int = Field(400, gt=0, description="stop after this many steps without a better validation MAE")
    warmup_steps: int = Field(50, ge=0, description="linear learning-rate warm-up")

    @field_validator("lrs")
    @classmethod
    def _lrs(cls, v: list[float]) -> list[float]:
        if not v or any(lr <= 0 for lr in v) or len(set(v)) != len(v):
            raise ValueError("finetune.optim.lrs must be a non-empty list of distinct positive learning rates")
        return v

    @model_validator(mode="after")
    def _patience_after_warmup(self) -> FinetuneOptim:
        if self.patience <= self.warmup_steps:
            raise ValueError(
                f"patience ({self.patience}) must exceed warmup_steps ({self.warmup_steps}): a run would stop while warming up"
            )
        return self


class MethodConfig(Strict):
    objective: str = Field(description="name in the objective registry (matssl.objectives)")
    params: dict[str, Any] = Field(default_factory=dict, description="objective parameters")
    optim: Optim | None = Field(None, description="overrides pretrain.optim for this method")
    seeds: list[int] | None = Field(None, min_length=1, description="overrides pretrain.seeds for this method")


class PretrainConfig(Strict):
    pool: str = Field(description="dataset (name under `datasets`) used as the unlabeled pool")
    methods: dict[str, MethodConfig]
    optim: Optim = Optim(epochs=10, batch_size=128, lr=1e-3)
    budgets: list[int] | None = Field(
        None,
        description="a pretraining-budget sweep: every trained method is pretrained for each of these numbers of epochs "
        "(its own optim.epochs otherwise), finetuned as '<method>-e<epochs>', and the report plots the gain against "
        "the budget",
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0],
        description="each method is pretrained once per seed (scratch: the first only); every finetuning run is "
        "paired with scratch of the same fold, label fraction and finetuning seed",
        min_length=1,
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    exclude_test_structures: bool = Field(False, description="drop every downstream test structure from the pool")
    exclude_match: list[Literal["id", "composition_volume", "structure"]] = Field(
        default_factory=lambda: ["id", "composition_volume"],
        min_length=1,
        description="how a pool structure is recognised as a downstream test structure: same id; same reduced "
        "composition and volume per atom within volume_tolerance; or pymatgen's StructureMatcher",
    )
    volume_tolerance: float = Field(0.02, ge=0, lt=1, description="relative volume-per-atom tolerance of composition_volume")

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        return each_once(v, "each seed once")

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(b < 1 for b in v)):
            raise ValueError("pretrain.budgets must be a non-empty list of epochs >= 1 (or absent)")
        return sorted(set(v)) if v else v

    @field_validator("methods")
    @classmethod
    def _scratch_present(cls, v: dict[str, MethodConfig]) -> dict[str, MethodConfig]:
        if "scratch" not in v:
            raise ValueError("pretrain.methods must contain 'scratch' (the no-pretraining baseline)")
        return v


class PropertyConfig(Strict):
    dataset: str = Field(description="dataset (name under `datasets`) with the labels")
    column: str = Field(description="label column of that dataset")
    kind: Literal["regression", "classification"] = Field(
        "regression",
        description="classification: every distinct value of the column is a class (or two classes by `threshold`); "
        "cross-entropy, ROC-AUC (one-vs-rest, macro) and accuracy, stratified folds",
    )
    threshold: float | None = Field(
        None,
        description="classification of a numeric column in two classes: '> threshold' and '<= threshold' (band_gap with 0: "
        "Matbench's metal / non-metal)",
    )
    transform: Literal["none", "log10", "log1p"] = Field(
        "none",
        description="log10: the property is the column's log10 (metrics in log10 units, as Matbench's log tasks); log1p: "
        "the model learns log1p of a non-negative, skewed column (many zeros), metrics stay in the column's unit",
    )
    per_atom: Literal["none", "cell", "formula_unit"] = Field(
        "none",
        description="an extensive property (per cell or per formula unit): the model learns it per atom of the cell or "
        "of the reduced formula unit, and predictions are multiplied back (metrics in the column's unit)",
    )
    unit: str = ""
    folds: Literal["matbench", "kfold"] = "kfold"
    n_folds: int = Field(5, ge=2)
    fold_seed: int = 0

    @model_validator(mode="after")
    def _per_atom_of_the_column(self) -> PropertyConfig:
        if self.kind == "classification" and (self.transform != "none" or self.per_atom != "none"):
            raise ValueError("a classification property takes neither transform nor per_atom (classes are not scaled)")
        if self.threshold is not None and self.kind != "classification":
            raise ValueError("threshold makes two classes of a numeric column: it needs kind: classification")
        if self.per_atom != "none" and self.transform == "log10":
            raise ValueError(
                "per_atom divides the column's values, and log10 makes the property log10 of the column: use "
                "transform: log1p (or none) with per_atom"
            )
        return self

    @property
    def fold_count(self) -> int:
        """Matbench's folds are 5; kfold has n_folds."""
        return 5 if self.folds == "matbench" else self.n_folds


class SmallData(Strict):
    """Model selection for a small labelled subset (fewer than `below` structures), where a validation split of ten
    or twenty structures is too noisy to choose by: the learning rate and the number of steps are chosen by inner
    `folds`-fold cross-validation on the whole subset (every inner model trained in lockstep, stopped together when
    the pooled out-of-fold score has not improved for `patience` steps); the untrained model (the training median)
    stays a candidate. The run's model is then the inner models averaged (`final: average`) or one model refit on
    the whole subset for the chosen steps (`refit`); with `shrink`, a regression's prediction is pulled toward the
    training median by the factor (0-1) that gives the best out-of-fold score."""

    below: int = Field(300, ge=0, description="labelled structures below which a run selects by cross-validation (0: never)")
    folds: int = Field(5, ge=2, description="inner folds")
    patience: int = Field(100, gt=0, description="steps without a better pooled out-of-fold score before stopping")
    final: Literal["average", "refit"] = Field("average", description="the inner models averaged, or one refit on all")
    shrink: bool = Field(False, description="a regression's predictions shrunk toward the median, by the out-of-fold score")


class FinetuneConfig(Strict):
    optim: FinetuneOptim = FinetuneOptim()
    small_data: SmallData = SmallData()
    head_width: int = Field(128, gt=0)
    fractions: list[float] = Field(default_factory=lambda: [0.1, 0.25, 1.0])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    folds: list[int] | None = Field(None, min_length=1, description="run only these fold numbers (default: all)")
    val_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="of each training subset, for early stopping and the learning rate"
    )
    min_val: int = Field(10, ge=2, description="fewest validation structures (and fewest training structures) of a run")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("seeds", "folds")
    @classmethod
    def _distinct(cls, v: list[int] | None) -> list[int] | None:
        return each_once(v, "each value once (a repeated one would count the same run twice)")

    @model_validator(mode="after")
    def _small_data_patience_after_warmup(self) -> FinetuneConfig:
        if self.small_data.below and self.small_data.patience <= self.optim.warmup_steps:
            raise ValueError(
                f"finetune.small_data.patience ({self.small_data.patience}) must exceed finetune.optim.warmup_steps "
                f"({self.optim.warmup_steps}): a cross-validated run would stop while warming up"
            )
        return self

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < f <= 1 for f in v):
            raise ValueError("finetune.fractions must be non-empty values in (0, 1]")
        return sorted(set(v))


class ProbeConfig(Strict):
    """Frozen-embedding probes (CrystalCLR, NEGNN) against fingerprint baselines on the same structures."""

    enabled: bool = True
    models: list[Literal["ridge", "random_forest", "kernel_ridge"]] = Field(
        default_factory=lambda: ["ridge", "random_forest", "kernel_ridge"]
    )
    baselines: list[Literal["fingerprints", "magpie", "sine_coulomb"]] = Field(
        default_factory=lambda: ["fingerprints", "magpie", "sine_coulomb"],
        description="'fingerprints': every kind of fingerprints.kinds, mean-pooled over the atoms",
    )
    fractions: list[float] | None = Field(None, description="label fractions (default: finetune.fractions)")

    @field_validator("baselines", mode="before")
    @classmethod
    def _renamed(cls, v: Any) -> Any:
        if isinstance(v, list) and {"soap", "acsf"} & set(v):
            raise ValueError("'soap' and 'acsf' are now 'fingerprints': every kind of fingerprints.kinds, mean-pooled")
        return v

    rf_trees: int = Field(100, gt=0, description="random forest size (scikit-learn's default: 100)")
    kernel_ridge_max_train: int = Field(
        5000,
        ge=10,
        description="kernel ridge holds n x n kernels (O(n^2) memory: 5,000 rows are 200 MB a matrix, and its grid search "
        "keeps several): above this many training structures it is fitted on a seeded sub-sample of this size",
    )
    map_points: int = Field(3000, ge=0, description="structures drawn in the 2-D embedding map (0: no map)")


class PredictConfig(Strict):
    """Predictions of one property for the structures of a dataset (labels optional): the mean and spread over the
    finetuned models of `method` at label fraction `fraction` (every fold, finetuning seed and pretraining seed)."""

    dataset: str = Field(description="dataset (name under `datasets`) to predict")
    method: str = Field(description="a key of pretrain.methods ('<method>-e<epochs>' with a pretrain.budgets sweep)")
    fraction: float | None = Field(None, description="label fraction of the models (default: the largest)")


class Comparison(Strict):
    """One comparison named before the runs, pooled over the label fractions: `method` against scratch or a control
    pretraining of its budget, on one property, on each, or (`across`) on average across the properties."""

    method: str = Field(
        description="a pretrained method: a key of pretrain.methods ('<method>-e<epochs>' in a pretrain.budgets sweep)"
    )
    property: str | None = Field(None, description="a key of properties (default: each property, a comparison each)")
    against: str = Field("scratch", description="'scratch', or a method (named as `method` is) whose objective is a control")
    across: bool = Field(
        False, description="the random-effects mean across the properties (one comparison) instead of one per property"
    )

    @model_validator(mode="after")
    def _one_scope(self) -> Comparison:
        if self.across and self.property is not None:
            raise ValueError(f"{self.method}: across (the mean across the properties) names no property ({self.property!r})")
        if self.against == self.method:
            raise ValueError(f"{self.method}: a method is not compared with itself")
        return self


class StatisticsConfig(Strict):
    confirmatory: list[Comparison] | None = Field(
        None,
        description="the comparisons named before the runs (with scratch or a control; per property or on average "
        "across the properties): Holm's correction over these alone, each question's others a family of their own "
        "(default: none named; every method x property comparison with scratch in one primary family)",
    )


class Config(Strict):
    results: str = Field("results", description="folder for every output (relative to the workflow)")
    threads: int = Field(
        1,
        ge=1,
        description="threads per training job on one machine (a SLURM profile's set-threads overrides it); not part of any hash",
    )
    datasets: dict[str, Source]
    ingest: IngestConfig = IngestConfig()
    graphs: GraphConfig = GraphConfig()
    encoder: EncoderConfig = EncoderConfig()
    augment: AugmentConfig = AugmentConfig()
    fingerprints: FingerprintConfig = FingerprintConfig()
    pretrain: PretrainConfig
    finetune: FinetuneConfig = FinetuneConfig()
    probes: ProbeConfig = ProbeConfig()
    properties: dict[str, PropertyConfig]
    predict: dict[str, PredictConfig] = Field(
        default_factory=dict, description="per property name: structures to predict -> results/predictions/<name>.parquet"
    )
    statistics: StatisticsConfig = StatisticsConfig()

    @field_validator("results")
    @classmethod
    def _results_inside(cls, v: str) -> str:
        parts = v.split("/")
        if not v or any(not SAFE_NAME.fullmatch(p) or ".." in p for p in parts):
            raise ValueError(
                "results must be a non-empty relative path of names made of letters, digits, '_', '.' and '-' "
                "(no spaces, '..', leading '/' or shell characters): outputs stay inside the workflow folder"
            )
        return v

    @model_validator(mode="after")
    def _safe_names(self) -> Config:
        """Names become parts of file names: letters, digits, `_`, `.` and `-` only (no `/` or `..`)."""
        for section, names in (
            ("datasets", self.datasets),
            ("properties", self.properties),
            ("pretrain.methods", self.pretrain.methods),
        ):
            for name in names:
                if not SAFE_NAME.fullmatch(name) or ".." in name:
                    raise ValueError(f"{section}.{name}: names may use letters, digits, '_', '.' and '-' only")
        return self

    @model_validator(mode="after")
    def _references(self) -> Config:
        if self.pretrain.pool not in self.datasets:
            raise ValueError(f"pretrain.pool {self.pretrain.pool!r} is not one of datasets: {sorted(self.datasets)}")
        for name, prop in self.properties.items():
            if prop.dataset not in self.datasets:
                raise ValueError(f"properties.{name}.dataset {prop.dataset!r} is not one of datasets: {sorted(self.datasets)}")
            if prop.folds == "matbench" and not isinstance(self.datasets[prop.dataset], MatbenchSource):
                raise ValueError(f"properties.{name}.folds: 'matbench' needs a matbench dataset")
            k = prop.fold_count
            if self.finetune.folds is not None and any(not 0 <= f < k for f in self.finetune.folds):
                raise ValueError(f"finetune.folds {self.finetune.folds}: property {name!r} has folds 0 to {k - 1}")
        return self

    def method_optim(self, method: str) -> Optim:
        return self.pretrain.methods[method].optim or self.pretrain.optim


class ConfigError(InputError):
    """A configuration problem, with the offending keys named."""


def parse_schema(data: dict[str, Any]) -> Config:
    """A config from a mapping, checked against this schema only (`matssl.validate.parse_config` checks the rest)."""
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            lines.append(f"  {key}: {e['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


class UniqueKeys(yaml.SafeLoader):
    """YAML whose mappings name each key once: PyYAML (and so Snakemake's --configfile) keeps the last of two silently,
    so a section written twice would lose its first half without a word."""


def _unique_mapping(loader: UniqueKeys, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool):  # (an unhashable key: construct_mapping says so)
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_config(path: str | Path) -> dict[str, Any]:
    """A config file's mapping (a missing file, bad YAML, a key twice in one mapping or something else than a mapping:
    a ConfigError)."""
    try:
        with open(path) as fh:
            data = yaml.load(fh, Loader=UniqueKeys)  # noqa: S506  (a SafeLoader)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML:\n{err}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys (datasets:, pretrain:, ...), not a {type(data).__name__}")
    return data or {}


def json_schema() -> dict[str, Any]:
    return Config.model_json_schema()
