"""Content-hashed stages: the plan of a whole run, and the manifest every stage writes.

A stage's directory is `<results>/<kind>/<label>-<hash>`. The hash covers exactly what determines
the output: the stage's own resolved parameters, the hashes of its upstream stages, the content of
input files it reads from outside the results folder, a fingerprint of the source code that computes
it and the versions of the libraries that compute it (`Kind.compute`, as installed where Snakemake plans the
run: with `--sdm conda` the jobs' environment is another one, whose versions only the manifests record).
The device, thread count and the MP API key are not in it (they do not change what is
computed, or must never be stored). Snakemake asks the plan for a stage's inputs and parameters; the
job itself gets a JSON `spec` and runs one `matssl stage` command.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import os
import platform
import re
import resource
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

from matssl.config import SAFE_NAME, Config, FilesSource, MatbenchSource, MPSource
from matssl.io import canonical_json, read_json, sha256_file, sha256_tree, spec_digest, write_json
from matssl.target import Target

PACKAGE_DIR = Path(__file__).parent


# --------------------------------------------------------------------------- stage kinds, declared once
@dataclass(frozen=True)
class Kind:
    """A kind of stage, declared once. `runner`: the function that runs it (`module:function` of this package: the
    command line calls it; its module and every module of the package that module imports, at any depth, are the
    kind's code, so that no change of its code leaves its key unchanged); `outputs`: the files it writes, the last one
    last (its presence means done); `compute`: the libraries whose versions decide its numbers (in its key);
    A kind without outputs is a summary
    (a property's, the report): not cached, its code a rule parameter. Threads and resources are the rules'
    (workflow/rules), where a cluster's user sets them; a test checks each rule against this table."""

    runner: str
    outputs: tuple[str, ...] = ()
    compute: tuple[str, ...] = ()


# Files beside the code that a module reads and that decide its output: part of the code of every kind that imports it.
DATA = {"kernels/__init__.py": ("kernels/*.c",), "report.py": ("templates/*.j2",)}
KINDS: dict[str, Kind] = {
    "download": Kind("ingest:run_download", ("manifest.json",)),
    "ingest": Kind(
        "ingest:run_ingest",
        ("structures.parquet", "rejected.parquet", "manifest.json"),
        ("pymatgen", "ase", "numpy", "pandas", "pyarrow"),
    ),
    "graphs": Kind("features:run_graphs", ("graphs.npz", "rejected.parquet", "manifest.json"), ("pymatgen", "numpy")),
    "augment": Kind(
        "features:run_augment", ("views.parquet", "graphs.npz", "rejected.parquet", "manifest.json"), ("pymatgen", "numpy")
    ),
    "fingerprints": Kind(
        "features:run_fingerprints", ("atoms.parquet", "manifest.json"), ("dscribe", "ase", "numpy", "scipy", "pymatgen")
    ),
    "splits": Kind("evaluate:run_splits", ("folds.json", "manifest.json"), ("scikit-learn", "numpy")),
    "leakage": Kind("leakage:run_leakage", ("excluded.json", "manifest.json"), ("pymatgen", "numpy")),
    "pretrain": Kind("pretrain:run_pretrain", ("encoder.pt", "history.json", "manifest.json"), ("torch", "numpy", "pymatgen")),
    "foundation": Kind(
        "foundation:run_foundation",
        ("features.parquet", "rejected.parquet", "manifest.json"),
        ("chgnet", "torch", "numpy", "pymatgen"),
    ),
    # (chgnet, pymatgen: a foundation model trained whole)
    "finetune": Kind(
        "finetune:run_finetune",
        ("metrics.json", "model.pt", "predictions.parquet", "manifest.json"),
        ("torch", "numpy", "scikit-learn", "chgnet", "pymatgen"),
    ),
    "probe": Kind(
        "probes:run_probe",
        ("probes.parquet", "map.parquet", "manifest.json"),
        ("torch", "numpy", "scikit-learn", "scipy", "pymatgen", "dscribe"),
    ),
    "predict": Kind("predict:run_predict", ("predictions.parquet", "rejected.parquet", "manifest.json"), ("torch", "numpy")),
    # summaries: not cached stages, but their rules take their code as a parameter, so that new statistics re-summarise
    "property": Kind("summarize:summarize_property"),
    "report": Kind("report:write_report"),
}
OUTPUTS = {k: list(v.outputs) for k, v in KINDS.items() if v.outputs}  # the cached kinds, in pipeline order
PACKAGES = [
    "matssl",
    "torch",
    "torch-geometric",
    "pymatgen",
    "dscribe",
    "chgnet",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "snakemake",
]


def runner(kind: str) -> Callable[..., Any]:
    """The function that runs a stage kind (`Kind.runner`), imported when asked for."""
    module, name = KINDS[kind].runner.split(":")
    return getattr(importlib.import_module(f"matssl.{module}"), name)


@cache
def direct_imports(root: Path, rel: str) -> tuple[str, ...]:
    """The package's source files (relative to `root`) that the file `rel` imports itself: every `import matssl.x` and
    `from matssl.x import ...`, at module level or inside a function (each file read once per process)."""
    out = []
    for node in ast.walk(ast.parse((root / rel).read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "matssl":
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "matssl":
                continue
            for k in range(2, len(parts) + 1):  # (importing matssl.a.b runs matssl/a/__init__.py first)
                path = Path(*parts[1:k])
                out += [c.as_posix() for c in (path.with_suffix(".py"), path / "__init__.py") if (root / c).is_file()]
    return tuple(out)


def package_imports(module: str) -> set[str]:
    """The package's source files that `module` (a file of it, relative: 'finetune.py') imports, at any depth, itself
    included."""
    seen, todo = set(), [module]
    while todo:
        rel = todo.pop()
        if rel not in seen:
            seen.add(rel)
            todo += direct_imports(PACKAGE_DIR, rel)
    return seen


@cache
def code_files(kind: str) -> list[str]:
    """A kind's code: its runner's module, the package's modules it imports at any depth, and their data files."""
    py = package_imports(KINDS[kind].runner.split(":")[0].replace(".", "/") + ".py")
    data = {f.relative_to(PACKAGE_DIR).as_posix() for m in py for pattern in DATA.get(m, ()) for f in PACKAGE_DIR.glob(pattern)}
    return sorted(py | data)


@cache
def code_fingerprint(kind: str) -> str:
    h = hashlib.sha256()
    for rel in code_files(kind):
        h.update(rel.encode())
        h.update((PACKAGE_DIR / rel).read_bytes())
    return h.hexdigest()[:16]


def installed_versions(packages: list[str]) -> dict[str, str]:
    out = {}
    for p in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[p] = metadata.version(p)
    return out


@cache
def compute_versions(kind: str) -> dict[str, str]:
    return installed_versions(list(KINDS[kind].compute))


@dataclass
class Stage:
    kind: str
    label: str
    params: dict[str, Any]
    results: str
    upstream: dict[str, Stage] = field(default_factory=dict)
    external: dict[str, str] = field(default_factory=dict)  # input files outside results: name -> path
    runtime: dict[str, Any] = field(default_factory=dict)  # how to run (device): not hashed; threads come from the job
    # upstream stages that count in the hash by the digest of their output, not their key, and are read from a copy
    # of it at a path named by that digest (the leakage guard's exclusion set, `exclusions/<digest>/excluded.json`:
    # a guard re-made from other inputs that excludes the same structures changes nothing downstream)
    by_content: dict[str, str] = field(default_factory=dict)

    @cached_property
    def hash(self) -> str:
        upstream = {k: self.by_content.get(k, s.hash) for k, s in self.upstream.items()}
        return self.hash_of(self.params, upstream, code_fingerprint(self.kind))

    def hash_of(self, params: dict[str, Any], upstream: dict[str, str], code: str) -> str:
        """The hash of this stage with these parameters, upstream hashes and code fingerprint (its own input files,
        outside the results folder, and this machine's library versions)."""
        content = {
            "kind": self.kind,
            "params": params,
            "upstream": dict(sorted(upstream.items())),
            "external": {k: sha256_tree(p) for k, p in sorted(self.external.items())},
            "code": code,
            "versions": compute_versions(self.kind),
        }
        return hashlib.sha256(canonical_json(content).encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        return f"{self.label}-{self.hash}"

    @property
    def dir(self) -> str:
        return f"{self.results}/{self.kind}/{self.key}"

    @property
    def outputs(self) -> list[str]:
        return [f"{self.dir}/{name}" for name in OUTPUTS[self.kind]]

    @property
    def done(self) -> str:
        return f"{self.dir}/manifest.json"

    def spec(self) -> dict[str, Any]:
        """Everything the job needs: its parameters and the directories of its inputs."""
        return {
            "kind": self.kind,
            "key": self.key,
            "params": self.params,
            "upstream": {k: self.upstream_dir(k) for k in self.upstream},
            **({"by_content": self.by_content} if self.by_content else {}),
            "external": self.external,
            "runtime": self.runtime,
        }

    def upstream_dir(self, name: str) -> str:
        """The folder this stage reads upstream `name` from: its stage folder, or the copy of its output by content."""
        if name in self.by_content:
            return exclusion_dir(self.results, self.by_content[name])
        return self.upstream[name].dir

    def upstream_files(self) -> list[str]:
        """The manifests of the stages this one reads (the last file each writes), and the copies it reads by
        content (see `by_content`)."""
        return [f"{self.upstream_dir(k)}/excluded.json" if k in self.by_content else s.done for k, s in self.upstream.items()]


class Plan:
    """Every stage of a run, derived from the validated config."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        r = cfg.results
        self.stages: dict[tuple[str, str], Stage] = {}
        used = {cfg.pretrain.pool} | {p.dataset for p in cfg.properties.values()} | {p.dataset for p in cfg.predict.values()}
        self.ingest = {name: self._ingest(name, src) for name, src in cfg.datasets.items() if name in used}
        self.graphs = {
            name: self._add(Stage("graphs", name, {"graphs": cfg.graphs.model_dump()}, r, {"structures": self.ingest[name]}))
            for name in self.ingest
        }
        pool = cfg.pretrain.pool
        # added to the plan only when an objective needs them (see _pretrain)
        self.augment = Stage(
            "augment",
            pool,
            {"augment": cfg.augment.model_dump(), "graphs": cfg.graphs.model_dump(), "max_z": cfg.ingest.max_z},
            r,
            {"structures": self.ingest[pool]},
        )
        self.splits = {
            name: self._add(Stage("splits", name, {"property": p.model_dump()}, r, {"structures": self.ingest[p.dataset]}))
            for name, p in cfg.properties.items()
        }
        # the leakage guard's stage (added to the plan only when a method trains on the pool, see _pretrain), and the
        # digest of its exclusion set, on which every pretraining stage that reads it is keyed: None until the guard
        # has run (the pretraining stages then wait for it: `pending`, a Snakemake checkpoint)
        self.leakage = self._leakage() if cfg.pretrain.exclude_test_structures else None
        self.exclusion = exclusion_digest(self.leakage) if self.leakage is not None else None
        # per method key (a method, or '<method>-e<epochs>' in a budget sweep), one stage per pretraining seed
        # (scratch, which does not train: one stage, the first seed)
        self.pretrain: dict[str, list[Stage]] = {}
        # methods on another model (`foundation`): no pretraining. Frozen (train: head): a feature stage per dataset;
        # every weight finetuned (train: all): the finetuning job runs the model itself
        self.frozen: dict[str, str] = {}
        self.foundation_all: dict[str, str] = {}
        for m in cfg.pretrain.methods:
            obj = self._objective(m)
            if not obj.kind.has_encoder:
                fp = {**obj.defaults, **cfg.pretrain.methods[m].params}
                (self.frozen if fp["train"] == "head" else self.foundation_all)[m] = fp["model"]
                continue
            for key, epochs in self._budgets(m):
                self.pretrain[key] = [self._pretrain(m, seed, epochs) for seed in self._pretrain_seeds(m)]
        self.finetune: dict[str, list[Stage]] = {name: self._finetunes(name) for name in cfg.properties}
        self.probes = {name: self._probe(name) for name in cfg.properties} if cfg.probes.enabled else {}
        self.predict = {name: self._predict(name) for name in cfg.predict}

    def _add(self, stage: Stage) -> Stage:
        self.stages[(stage.kind, stage.key)] = stage
        return stage

    def _ingest(self, name: str, src: MatbenchSource | FilesSource | MPSource) -> Stage:
        r = self.cfg.results
        params = {"dataset": name, "source": src.model_dump(), "ingest": self.cfg.ingest.model_dump()}
        if isinstance(src, MPSource) or (isinstance(src, MatbenchSource) and src.path is None):
            download = self._add(Stage("download", name, {"source": src.model_dump()}, r))
            return self._add(Stage("ingest", name, params, r, {"download": download}))
        external = {"path": src.path}
        if isinstance(src, FilesSource) and src.labels:
            external["labels"] = src.labels
        return self._add(Stage("ingest", name, params, r, external=external))

    def _fingerprints(self, dataset: str) -> Stage:
        """Per-atom fingerprints of a dataset (added only when an objective or a probe needs them)."""
        params = {"fingerprints": self.cfg.fingerprints.model_dump()}
        return self._add(Stage("fingerprints", dataset, params, self.cfg.results, {"structures": self.ingest[dataset]}))

    def _objective(self, method: str):
        from matssl.objectives import OBJECTIVES

        return OBJECTIVES[self.cfg.pretrain.methods[method].objective]

    def _trains(self, method: str) -> bool:
        return self._objective(method).kind.trains

    def _foundation(self, model: str, dataset: str) -> Stage:
        """A foundation model's crystal features of a dataset."""
        return self._add(
            Stage("foundation", f"{model}-{dataset}", {"model": model}, self.cfg.results, {"structures": self.ingest[dataset]})
        )

    def _leakage(self) -> Stage:
        """The pool structures that are downstream test structures (the leakage guard): found once, read by every
        pretraining job."""
        cfg = self.cfg
        upstream = {"structures": self.ingest[cfg.pretrain.pool]}
        for name, prop in cfg.properties.items():
            upstream[f"splits:{name}"] = self.splits[name]
            upstream[f"structures:{name}"] = self.ingest[prop.dataset]
        match = sorted(set(cfg.pretrain.exclude_match))  # (their order and repeats change nothing)
        params = {"exclude_match": match}
        if "composition_volume" in match:
            params["volume_tolerance"] = cfg.pretrain.volume_tolerance
        return Stage("leakage", cfg.pretrain.pool, params, cfg.results, upstream)

    def _pretrain_seeds(self, method: str) -> list[int]:
        seeds = self.cfg.pretrain.methods[method].seeds or self.cfg.pretrain.seeds
        return seeds if self._trains(method) else seeds[:1]

    def _budgets(self, method: str) -> list[tuple[str, int | None]]:
        """(method key, epochs) of each pretraining budget: the method's own optim.epochs (None), or each
        epoch count of a `pretrain.budgets` sweep."""
        sweep = self.cfg.pretrain.budgets
        if sweep is None or not self._trains(method):
            return [(method, None)]
        return [(f"{method}-e{epochs}", epochs) for epochs in sweep]

    def _pretrain(self, method: str, seed: int, epochs: int | None) -> Stage:
        cfg = self.cfg
        m = cfg.pretrain.methods[method]
        from matssl.objectives import OBJECTIVES

        obj = OBJECTIVES[m.objective]
        optim = cfg.method_optim(method)
        if epochs is not None:
            optim = optim.model_copy(update={"epochs": epochs})
        upstream = {"graphs": self.graphs[cfg.pretrain.pool]}
        if obj.needs_views:
            upstream["augment"] = self._add(self.augment)
        if obj.needs_fingerprints:
            upstream["fingerprints"] = self._fingerprints(cfg.pretrain.pool)
        by_content = {}
        if self.leakage is not None and obj.kind.trains:  # (scratch does not see the pool)
            upstream["leakage"] = self._add(self.leakage)
            by_content["leakage"] = self.exclusion or "pending"
        params = {
            "method": method,
            "objective": m.objective,
            "objective_params": {k: v for k, v in {**obj.defaults, **m.params}.items() if k not in obj.files},
            "optim": optim.model_dump() if obj.kind.trains else None,
            "encoder": cfg.encoder.model_dump(),
            "graphs": cfg.graphs.model_dump(),
            "max_z": cfg.ingest.max_z,
            "seed": seed,
        }
        runtime = {"device": cfg.pretrain.device}
        # a budget that equals the method's own epochs is named as the stage without a sweep, so that adding a sweep
        # to a config re-uses the pretraining it already has (the other budgets: their epochs in the name)
        own = epochs is None or epochs == cfg.method_optim(method).epochs
        label = f"{method}-s{seed}" if own else f"{method}-e{epochs}-s{seed}"
        external = {k: m.params[k] for k in obj.files}
        return self._add(
            Stage("pretrain", label, params, cfg.results, upstream, external=external, runtime=runtime, by_content=by_content)
        )

    @cached_property
    def after_guard(self) -> set[str]:
        """The stage kinds keyed, through an upstream stage, on the leakage guard's exclusion set (its content)."""
        keyed: dict[int, bool] = {}

        def on_guard(s: Stage) -> bool:
            if id(s) not in keyed:
                keyed[id(s)] = bool(s.by_content) or any(on_guard(u) for u in s.upstream.values())
            return keyed[id(s)]

        return {s.kind for s in self.stages.values() if on_guard(s)}

    @property
    def pending(self) -> bool:
        """Whether the pretraining stages' keys wait on the leakage guard's output (not made yet)."""
        return self.exclusion is None and any("leakage" in s.by_content for s in self.stages.values())

    def fold_numbers(self, prop: str) -> list[int]:
        n = self.cfg.properties[prop].fold_count
        return self.cfg.finetune.folds if self.cfg.finetune.folds is not None else list(range(n))

    def _finetunes(self, prop: str) -> list[Stage]:
        from matssl.objectives import OBJECTIVES, MethodKind

        cfg = self.cfg
        ft = cfg.finetune.model_dump(exclude={"fractions", "seeds", "folds", "device"})
        p = cfg.properties[prop]
        data = {"graphs": self.graphs[p.dataset], "splits": self.splits[prop], "structures": self.ingest[p.dataset]}
        # what each method's runs start from: (method, label prefix, upstream stage, run parameters it decides)
        starts = []
        for method, stages in self.pretrain.items():
            for pre in stages:
                pseed, optim = pre.params["seed"], pre.params["optim"]
                starts.append(
                    (
                        method,
                        f"{prop}-{method}-ps{pseed}",
                        {"pretrain": pre},
                        {
                            "base_method": pre.params["method"],
                            "pretrain_epochs": optim["epochs"] if optim else 0,
                            "random_encoder": OBJECTIVES[pre.params["objective"]].kind is MethodKind.SCRATCH,
                            "pretrain_seed": pseed,
                        },
                    )
                )
        for method, model in self.frozen.items():  # the same head and protocol on frozen features
            starts.append(
                (
                    method,
                    f"{prop}-{method}",
                    {"features": self._foundation(model, p.dataset)},
                    {"base_method": method, "pretrain_epochs": 0, "random_encoder": False, "frozen": model, "pretrain_seed": 0},
                )
            )
        for method, model in self.foundation_all.items():  # the same head and protocol, the model's weights training too
            starts.append(
                (
                    method,
                    f"{prop}-{method}",
                    {},
                    {
                        "base_method": method,
                        "pretrain_epochs": 0,
                        "random_encoder": False,
                        "foundation": model,
                        "pretrain_seed": 0,
                    },
                )
            )
        out = []
        for method, prefix, upstream, decided in starts:
            for fold in self.fold_numbers(prop):
                for frac in cfg.finetune.fractions:
                    for seed in cfg.finetune.seeds:
                        params = {
                            "property": prop,
                            **Target.of(p.model_dump()).params(),
                            "method": method,
                            **decided,
                            "fold": fold,
                            "fraction": frac,
                            "seed": seed,
                            "finetune": ft,
                        }
                        out.append(
                            self._add(
                                Stage(
                                    "finetune",
                                    f"{prefix}-f{fold}-p{frac:g}-s{seed}",
                                    params,
                                    cfg.results,
                                    data | upstream,
                                    runtime={"device": cfg.finetune.device},
                                )
                            )
                        )
        return out

    def _probe(self, prop: str) -> Stage:
        cfg = self.cfg
        p = cfg.properties[prop]
        upstream = {"structures": self.ingest[p.dataset], "graphs": self.graphs[p.dataset], "splits": self.splits[prop]}
        upstream.update({f"pretrain:{m}": stages[0] for m, stages in self.pretrain.items()})  # the first pretraining seed
        upstream.update({f"foundation:{m}": self._foundation(model, p.dataset) for m, model in self.frozen.items()})
        if "fingerprints" in cfg.probes.baselines:
            upstream["fingerprints"] = self._fingerprints(p.dataset)
        params = {
            "property": {"name": prop, **Target.of(p.model_dump()).params()},
            "probes": cfg.probes.model_dump(exclude={"fractions"}),
            "methods": {key: stages[0].params["objective"] for key, stages in self.pretrain.items()},
            "fingerprint_kinds": cfg.fingerprints.kinds if "fingerprints" in cfg.probes.baselines else [],
            "frozen": self.frozen,
            "folds": self.fold_numbers(prop),
            "fractions": sorted(cfg.probes.fractions or cfg.finetune.fractions),
            "seeds": cfg.finetune.seeds,
        }
        return self._add(Stage("probe", prop, params, cfg.results, upstream))

    def _predict(self, prop: str) -> Stage:
        cfg, pr = self.cfg, self.cfg.predict[prop]
        fraction = pr.fraction if pr.fraction is not None else max(cfg.finetune.fractions)
        runs = [s for s in self.finetune[prop] if s.params["method"] == pr.method and s.params["fraction"] == fraction]
        p = cfg.properties[prop]
        upstream = {"structures": self.ingest[pr.dataset], "graphs": self.graphs[pr.dataset]}
        upstream |= {f"model:{s.label}": s for s in runs}
        # (a regression's: predictions of a classification are refused by validate.check_predict)
        params = {
            "property": prop,
            **Target.of(p.model_dump()).params("column", "transform", "per_atom"),
            "method": pr.method,
            "fraction": fraction,
        }
        return self._add(
            Stage("predict", f"{prop}-{pr.dataset}", params, cfg.results, upstream, runtime={"device": cfg.finetune.device})
        )

    def prediction_target(self, prop: str) -> str:
        return f"{self.cfg.results}/predictions/{prop}.parquet"

    def prediction_spec(self, prop: str) -> dict[str, Any]:
        return prediction_spec(self.predict[prop].key)

    def get(self, kind: str, key: str) -> Stage:
        try:
            return self.stages[(kind, key)]
        except KeyError:
            raise KeyError(f"no {kind} stage {key!r} in the current configuration") from None

    def property_spec(self, prop: str) -> dict[str, Any]:
        p = self.cfg.properties[prop]
        return {
            "property": prop,
            "unit": p.unit,
            "kind": p.kind,
            "transform": p.transform,
            "per_atom": p.per_atom,
            "splits": self.splits[prop].dir,
            "runs": [s.dir for s in self.finetune[prop]],
        }

    def property_target(self, prop: str) -> str:
        return f"{self.cfg.results}/properties/{prop}.json"

    @property
    def report_target(self) -> str:
        return f"{self.cfg.results}/report.html"

    def report_spec(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "properties": {name: {"target": self.property_target(name), **p.model_dump()} for name, p in cfg.properties.items()},
            "pretrain": {s.label: s.dir for stages in self.pretrain.values() for s in stages},
            "probes": {name: s.dir for name, s in self.probes.items()},
            "stages": sorted(s.dir for s in self.stages.values() if s.kind != "predict"),  # predictions are not results
            "foundation": {m: "frozen, head only" for m in self.frozen}
            | {m: "every weight finetuned" for m in self.foundation_all},
            "pool": cfg.pretrain.pool,
            "exclude_test_structures": cfg.pretrain.exclude_test_structures,
            "config": cfg.model_dump(mode="json", exclude={"threads"}),  # how jobs run is not part of the report
        }


# --------------------------------------------------------------------------- manifests
def package_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **installed_versions(PACKAGES)}


def peak_memory_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The job's peak resident memory; RUSAGE_CHILDREN: that of its largest finished child process (0 if none): a worker
    of the fingerprints or the guard's matching, or any subprocess. A forked child counts the pages it shares with the
    job, so this is an upper bound: a short subprocess forked late shows as large as the job."""
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


# the record itself (and a damaged stage's old one), and the resume state a finished stage deletes
UNTRACKED = {"manifest.json", "manifest.damaged.json", "checkpoint.pt"}


def damaged_files(stage_dir: str | Path, full: bool = False) -> list[str]:
    """Files of a finished stage that are missing or differ from its manifest's record (size; with
    `full`, also the SHA-256). A stage without a manifest is unfinished, not damaged: []."""
    d = Path(stage_dir)
    if not (d / "manifest.json").exists():
        return []
    bad = []
    for name, rec in read_json(d / "manifest.json").get("files", {}).items():
        f = d / name
        if not f.is_file() or f.stat().st_size != rec["bytes"] or (full and sha256_file(f) != rec["sha256"]):
            bad.append(name)
    return bad


def foreign_stage_problems(stage: Stage, folder: str | Path) -> list[str]:
    """Why a stage folder made elsewhere (another machine, a saved part, an archive) cannot stand for `stage` of this
    plan ([] when it can): it is checked as a stage made here. Its manifest must be this stage's (kind and key), and
    the key recomputed from the manifest's own parameters, upstream hashes and code must be the folder's; every output
    of the kind must be listed with its size and SHA-256, and every file must be a plain file matching its record.
    (Library versions are this plan's: a run elsewhere records its own, which may differ.) A tampered file fails; a
    tampered file whose manifest was rewritten to match is beyond what hashes without a signature can see."""
    d = Path(folder)
    try:
        man = read_json(d / "manifest.json")
    except (OSError, ValueError) as err:
        return [f"no readable manifest.json ({type(err).__name__})"]
    if not isinstance(man, dict):
        return ["manifest.json is not a mapping"]
    out = []
    if man.get("kind") != stage.kind or man.get("key") != stage.key:
        out.append(f"its manifest is of {man.get('kind')} {man.get('key')!r}, not {stage.kind} {stage.key!r}")
    try:
        upstream = {k: v.get("content", v["hash"]) for k, v in man["upstream"].items()}
        if stage.hash_of(man["params"], upstream, man["code"]) != stage.hash:
            out.append("the key recomputed from its manifest (parameters, upstream stages, code) is not its folder's")
    except (KeyError, TypeError, AttributeError) as err:
        out.append(f"its manifest lacks what its key is made of ({type(err).__name__}: {err})")
    files = man.get("files") if isinstance(man.get("files"), dict) else {}
    missing = [f for f in OUTPUTS[stage.kind] if f != "manifest.json" and f not in files]
    if missing:
        out.append(f"its manifest does not list {', '.join(missing)}")
    if bad := [n for n in files if not isinstance(n, str) or not SAFE_NAME.fullmatch(n)]:
        return [*out, f"its manifest names files that are not plain names: {bad[:3]}"]
    for p in sorted(d.iterdir()):
        if p.name == "manifest.json":  # (a checkpoint or a set-aside manifest is not a finished stage's)
            continue
        rec = files.get(p.name)
        if p.is_symlink() or not p.is_file():
            out.append(f"{p.name} is {'a link' if p.is_symlink() else 'not a plain file'}")
        elif not isinstance(rec, dict):
            out.append(f"{p.name} is not in its manifest")
        elif p.stat().st_size != rec.get("bytes") or sha256_file(p) != rec.get("sha256"):
            out.append(f"{p.name} differs from its manifest's size and SHA-256")
    out += [f"{name} is missing" for name in files if not (d / name).exists()]
    return out


def set_aside(stage_dir: str | Path) -> None:
    """Move a damaged stage's manifest to `manifest.damaged.json`: the stage counts as unfinished."""
    os.replace(Path(stage_dir) / "manifest.json", Path(stage_dir) / "manifest.damaged.json")


def unrecorded(stage_dir: str | Path) -> bool:
    """A stage folder with output files but no manifest: its manifest was deleted or set aside, or its job died
    between its outputs and its manifest. Not finished, whatever Snakemake's view of its consumers."""
    d = Path(stage_dir)
    if (d / "manifest.json").exists() or not d.is_dir():
        return False
    return any(f.is_file() and f.name not in UNTRACKED and not f.name.startswith(".tmp-") for f in d.iterdir())


def invalidate_damaged(plan: Plan) -> dict[str, list[str]]:
    """Make Snakemake re-run every stage of the plan that is damaged (a file missing or of another size than its
    manifest says: the manifest is set aside as `manifest.damaged.json`) or unrecorded (files but no manifest,
    e.g. one deleted by hand or set aside by `matssl verify`), and everything downstream of it. Snakemake looks for
    missing inputs only below a target that has to be made, so the report and the property summaries go too; the
    stages below them then re-run because an input is re-made. Sizes only: cheap enough for every run (`matssl
    verify` compares the SHA-256 too)."""
    found = {}
    for digest in {d for s in plan.stages.values() for d in s.by_content.values() if d != "pending"}:
        copy = Path(exclusion_dir(plan.cfg.results, digest)) / "excluded.json"  # named by its digest: must be it
        if copy.is_file() and sha256_file(copy)[:16] != digest:
            copy.unlink()
            found[str(copy.parent)] = ["excluded.json"]
    for stage in plan.stages.values():
        bad = damaged_files(stage.dir)
        if bad:
            set_aside(stage.dir)
            found[stage.dir] = bad
        elif unrecorded(stage.dir):
            found[stage.dir] = ["manifest.json"]
    if found:
        for target in (plan.report_target, *(plan.property_target(p) for p in plan.cfg.properties)):
            Path(target).unlink(missing_ok=True)
    return found


def exclusion_dir(results: str, digest: str) -> str:
    """The copy of a leakage guard's exclusion set named by its digest, which pretraining stages read."""
    return f"{results}/exclusions/{digest}"


def exclusion_digest(leakage: Stage) -> str | None:
    """The digest of a finished leakage guard's exclusion set (from its manifest), or None before it has run."""
    manifest = Path(leakage.done)
    if not manifest.is_file():
        return None
    return read_json(manifest)["files"]["excluded.json"]["sha256"][:16]


def prediction_spec(key: str) -> dict[str, Any]:
    """What a property's predictions file is made from: its predict stage (whose digest the file records)."""
    return {"predict": key}


REPORT_DIGEST = re.compile(r'<meta name="matssl-spec" content="([0-9a-f]+)">')
PARQUET_DIGEST = b"matssl-spec"  # in a predictions file's schema metadata


def recorded_digest(target: str | Path) -> str | None:
    """The spec digest a property summary, the report or a predictions file was made from (None: no such file, or
    none recorded)."""
    path = Path(target)
    if not path.is_file():
        return None
    if path.suffix == ".json":
        return read_json(path).get("spec_digest")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        digest = (pq.read_schema(path).metadata or {}).get(PARQUET_DIGEST)
        return digest.decode() if digest else None
    with open(path, errors="replace") as fh:
        found = REPORT_DIGEST.search(fh.read(4096))
    return found.group(1) if found else None


def summary_spec_file(results: str, name: str, spec: dict[str, Any], target: str) -> tuple[str, bool]:
    """The content-addressed file holding a property's or the report's spec (it names every run and can pass
    Linux's 128 KiB limit on one command-line argument), an input of the rule that makes `target`. The target is
    not in a hashed folder: when it was made from another spec (another config sharing the results folder), the
    file is touched, so that the target is re-made whatever Snakemake's rerun triggers (`--rerun-triggers mtime`
    too). Returns the path and whether the target was made from another spec."""
    digest = spec_digest(spec)
    path = Path(results) / "specs" / f"{name}-{digest}.json"
    foreign = recorded_digest(target) not in (None, digest)
    if not path.exists():
        write_json(spec, path)
    elif foreign:
        os.utime(path)
    return str(path), foreign


def write_manifest(spec: dict[str, Any], out: str | Path, started: float, extra: dict[str, Any] | None = None) -> None:
    """The last file a stage writes: parameters, input hashes, code, versions, timing, memory."""
    out = Path(out)
    upstream = {}
    for name, d in spec.get("upstream", {}).items():
        m = Path(d) / "manifest.json"
        upstream[name] = {"dir": d, "hash": read_json(m).get("hash") if m.exists() else None}
        if name in spec.get("by_content", {}):  # what the key holds of it: its output's digest
            upstream[name]["content"] = spec["by_content"][name]
    ended = time.time()
    files = sorted(f for f in out.iterdir() if f.is_file() and f.name not in UNTRACKED and not f.name.startswith(".tmp-"))
    manifest = {
        "kind": spec["kind"],
        "key": spec["key"],
        "hash": spec["key"].rsplit("-", 1)[-1],
        "params": spec["params"],
        "upstream": upstream,
        "external": spec.get("external", {}),
        "runtime": spec.get("runtime", {}),
        "code": code_fingerprint(spec["kind"]),
        "versions": package_versions(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "argv": [a for a in sys.argv if "MP_API_KEY" not in a],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "ended": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ended)),
        "wall_s": round(ended - started, 3),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "peak_memory_child_mb": round(peak_memory_mb(resource.RUSAGE_CHILDREN), 1),
        "files": {f.name: {"bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in files},
        **(extra or {}),
    }
    write_json(manifest, out / "manifest.json")
