"""Runs to answers: a property's summary (`results/properties/<p>.json`), and one summary of several results folders.

A property's summary is the workflow's per-property target: every finetuning run's metrics, where it ran and from
which pretraining stage, and the protocol the runs share (finetuning settings, finetuning code, folds). A folder
holding `properties/<p>.json` and the pretraining stages they name (`pretrain/<stage>/`) is what `matssl summarize`
reads: a results folder of the workflow, or a copy of one made elsewhere (a campaign's parts). Several are merged into
one set of runs, each run identified by its finetuning stage's key (its folder's name), and the statistics' families
are taken over all of them: `matssl summarize A B --out DIR` writes DIR/summary.md, summary.json and report.html.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from matssl.config import Comparison
from matssl.io import InputError, canonical_json, read_json, spec_digest, write_json
from matssl.stats import SCORES, Analysis, Named, analyse, summarize_runs

# what a property summary's runs share (kept once per property)
PROPERTY_FIELDS = ("property", "unit", "transform", "kind", "per_atom", "classes")
# what a property summary says of its data, kept from the first folder that says it (not compared)
DATA_FIELDS = ("atoms_spearman", "tail_share")
# what one protocol shares: per property, and (the first two) over every property
PROTOCOL_FIELDS = ("finetune", "finetune_code", "splits")
# what identifies a run within a property: two runs with the same of these but another stage key disagree
RUN_ID = ("method", "pretrain_seed", "pretrain_epochs", "fold", "fraction", "seed")
WHERE = ("dir", "device", "wall_s")  # where and how long a run ran: may differ for the same run


class SummaryError(InputError):
    """Results that cannot be summarised together (another protocol, the same run with other numbers, ...)."""


def stage_key(run: dict[str, Any]) -> str:
    """A run's identity: its finetuning stage's folder name (method, fold, fraction, seed and the stage's key)."""
    return Path(run["dir"]).name


def pretrained_from(run: dict[str, Any]) -> str | None:
    """The pretraining stage (folder name) a run started from; None for a foundation model's (NaN in a table)."""
    pre = run.get("pretrain")
    return pre if isinstance(pre, str) else None


def numbers(run: dict[str, Any]) -> str:
    """What a run gave, where it ran left out (NaN equal to NaN)."""
    return canonical_json({k: v for k, v in run.items() if k not in WHERE})


def run_id(run: dict[str, Any]) -> tuple:
    return tuple(run.get(k) for k in RUN_ID)


# --------------------------------------------------------------------------- one property's summary (the workflow's)
def run_record(man: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """From a finetuning run's manifest: where it ran (device, wall time, the pretraining stage it started from: none
    for a foundation model) and its protocol (finetuning settings, finetuning code, folds)."""
    pre = man["upstream"].get("pretrain", {}).get("dir")
    where = {"device": man.get("device", "cpu"), "wall_s": man.get("wall_s"), "pretrain": Path(pre).name if pre else None}
    protocol = {"finetune": man["params"]["finetune"], "finetune_code": man["code"], "splits": man["upstream"]["splits"]["hash"]}
    return where, protocol


def one_protocol(protocols: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """The protocol every run of a property shares (None where it has no run)."""
    mixed = [k for k in PROTOCOL_FIELDS if any(p[k] != protocols[0][k] for p in protocols)]
    if mixed:  # (a plan gives every run of a property one protocol: only a hand-made spec or folder mixes them)
        raise SummaryError(f"{what}: its runs differ in {', '.join(mixed)}")
    return protocols[0] if protocols else dict.fromkeys(PROTOCOL_FIELDS)


def summarize_property(spec: dict[str, Any], out: Path) -> None:
    """The per-property target: every run's metrics, where it ran (device, wall time) and from which pretraining stage
    (its folder's name; none for a foundation model), the protocol its runs share, and the per-method summary."""
    kind = spec.get("kind", "regression")
    sc = SCORES[kind]
    keep = [
        "method",
        "base_method",
        "pretrain_epochs",
        "pretrain_seed",
        "fold",
        "fraction",
        "seed",
        "precision",
        sc.primary,
        *sc.others,
        "n_train",
        "n_val",
        "n_test",
        "n_train_fold",
        "lr",
        sc.val,
        "best_step",
        "steps",
        "stopped",
        "hit_cap",
    ]
    rows, protocols = [], []
    for d in spec["runs"]:
        m = read_json(Path(d) / "metrics.json")
        dummy = {f"dummy_{k}_{metric}": v for k, scores in m["dummy"].items() for metric, v in scores.items()}
        clipped = {"n_test_clipped": m.get("n_test_clipped", math.nan)}  # (a regression's; NaN: runs from before it was)
        where, protocol = run_record(read_json(Path(d) / "manifest.json"))
        selection = {"selection": m.get("selection", "split")}  # (runs from before small-data selection: a split)
        rows.append({k: m[k] for k in keep} | clipped | selection | dummy | {"dir": d} | where)
        protocols.append(protocol)
    protocol = one_protocol(protocols, spec["property"])
    runs = pd.DataFrame(rows)
    summary = summarize_runs(runs, kind=kind)
    folds = read_json(Path(spec["splits"]) / "folds.json") if spec.get("splits") else {}
    write_json(
        {
            "property": spec["property"],
            "spec_digest": spec_digest(spec),
            "unit": spec.get("unit", ""),
            "kind": kind,
            "classes": folds.get("classes"),
            "transform": spec.get("transform", "none"),
            "per_atom": spec.get("per_atom", "none"),
            "atoms_spearman": folds.get("atoms_spearman"),
            "tail_share": folds.get("tail_share"),
            **protocol,
            "summary": summary.to_dict("records"),
            "runs": runs.to_dict("records"),
        },
        out,
    )


# --------------------------------------------------------------------------- several results folders, one set of runs
@dataclass
class Runs:
    """The runs of one or several results folders, merged: per property its fields and runs, and the pretraining
    stages the runs started from."""

    props: dict[str, dict] = field(default_factory=dict)  # property -> its fields (unit, kind, protocol) and "runs"
    pretrain: dict[str, dict] = field(default_factory=dict)  # pretraining stage folder name -> its manifest
    pretrain_dirs: dict[str, Path] = field(default_factory=dict)  # pretraining stage folder name -> where it is
    run_dirs: dict[str, Path] = field(default_factory=dict)  # finetuning stage key -> its folder, where a folder has it
    sources: dict[str, int] = field(default_factory=dict)  # folder -> how many runs it gave that no earlier one had

    def add(self, source: str, d: dict[str, Any]) -> None:
        """Adds one property summary's runs; a run already here (the same stage key) is kept once, and must have given
        the same numbers; a run of the same method, fold, fraction and seeds under another key is another protocol."""
        prop = d["property"]
        have = self.props.setdefault(prop, {**{k: d.get(k) for k in PROPERTY_FIELDS + PROTOCOL_FIELDS}, "runs": []})
        for k in DATA_FIELDS:
            have[k] = d.get(k) if have.get(k) is None else have[k]
        for k in PROPERTY_FIELDS + PROTOCOL_FIELDS:
            if have.get(k) != d.get(k):
                raise SummaryError(
                    f"{source}: property {prop} has another {k} than an earlier folder: {d.get(k)!r} against {have.get(k)!r}"
                )
        seen = {stage_key(r): r for r in have["runs"]}
        ids = {run_id(r): r for r in have["runs"]}
        added = 0
        for r in d["runs"]:
            twin = seen.get(stage_key(r))
            if twin is not None:
                if numbers(twin) != numbers(r):
                    raise SummaryError(
                        f"{source}: run {stage_key(r)} of {prop} gave other numbers in an earlier folder "
                        "(a GPU is not bit-reproducible): keep one of the two"
                    )
                continue
            if run_id(r) in ids:
                raise SummaryError(
                    f"{source}: run {stage_key(r)} of {prop} is run {stage_key(ids[run_id(r)])} of an "
                    "earlier folder made with other code or settings: merge runs of one protocol only"
                )
            have["runs"].append(r)
            seen[stage_key(r)] = ids[run_id(r)] = r
            added += 1
        self.sources[source] = self.sources.get(source, 0) + added

    def check(self) -> None:
        """One protocol over every property, and one encoder per pretrained method, seed and budget."""
        for k in ("finetune", "finetune_code"):
            values = [d[k] for d in self.props.values()]
            if any(v != values[0] for v in values):
                raise SummaryError(f"the properties were finetuned with other {k.replace('_', ' ')}: not one protocol")
        encoders: dict[tuple, set[str]] = {}
        for prop, d in self.props.items():
            for r in d["runs"]:
                if pretrained_from(r):
                    if r["pretrain"] not in self.pretrain:
                        raise SummaryError(
                            f"run {stage_key(r)} of {prop} started from pretraining stage {r['pretrain']}, "
                            "which none of the folders holds (pretrain/<stage>/manifest.json)"
                        )
                    sha = self.pretrain[r["pretrain"]]["files"]["encoder.pt"]["sha256"]
                    encoders.setdefault((r["method"], r.get("pretrain_seed"), r.get("pretrain_epochs")), set()).add(sha)
        two = {m: s for m, s in encoders.items() if len(s) > 1}
        if two:
            raise SummaryError(f"runs of one method started from different encoders (other pool, guard or code): {two}")

    @property
    def used(self) -> list[str]:
        """The pretraining stages (folder names) the runs started from."""
        return sorted({pretrained_from(r) for d in self.props.values() for r in d["runs"]} - {None})

    @property
    def foundation(self) -> list[str]:
        """The methods with no pretraining stage of ours: foundation models."""
        runs = [r for d in self.props.values() for r in d["runs"]]
        methods = {r["method"] for r in runs}
        return sorted(m for m in methods if not any(pretrained_from(r) for r in runs if r["method"] == m))

    @property
    def controls(self) -> list[str]:
        """The methods whose pretraining stage ran a control objective (`Objective.control`)."""
        from matssl.objectives import OBJECTIVES

        def control(key: str) -> bool:
            objective = OBJECTIVES.get(self.pretrain[key]["params"].get("objective"))
            return bool(objective and objective.control)

        runs = [r for d in self.props.values() for r in d["runs"]]
        return sorted({r["method"] for r in runs if pretrained_from(r) and control(r["pretrain"])})

    def frame(self) -> pd.DataFrame:
        """Every run, one row each, with its property."""
        return pd.concat([pd.DataFrame(d["runs"]).assign(property=p) for p, d in self.props.items()], ignore_index=True)

    def pool_of(self, r: dict[str, Any]) -> str | None:
        """What the run's encoder was pretrained on: its pool's graphs and leakage guard (stage hashes); None for a
        run without a pretraining stage of ours, or whose stage read no pool (an imported encoder)."""
        up = self.pretrain[r["pretrain"]].get("upstream") or {} if pretrained_from(r) else {}
        return "/".join(up[k]["hash"] for k in ("graphs", "leakage") if k in up) if "graphs" in up else None

    def analyse(self, confirmatory: list[Named] | None = None) -> Analysis:
        """The statistics' families over every run (`stats.analyse`), each run with the pool its encoder read."""
        data = {
            p: (pd.DataFrame([{**r, "pretrain_pool": self.pool_of(r)} for r in d["runs"]]), d.get("kind") or "regression")
            for p, d in self.props.items()
        }
        return analyse(data, foundation=self.foundation, confirmatory=confirmatory, controls=self.controls)


def summaries(folder: Path) -> list[Path]:
    """A results folder's property summaries: `properties/<p>.json`, not the copies set aside (`<p>.stale.json`) nor a
    file being written (`.tmp-...`)."""
    return sorted(
        f for f in (folder / "properties").glob("*.json") if not f.name.startswith(".") and not f.name.endswith(".stale.json")
    )


def read_summary(f: Path) -> dict[str, Any]:
    try:
        d = read_json(f)
    except (OSError, ValueError) as err:
        raise SummaryError(f"{f}: not a readable property summary ({type(err).__name__}: {err})") from None
    if not isinstance(d, dict) or d.get("property") != f.stem or not isinstance(d.get("runs"), list):
        raise SummaryError(f"{f}: not a property summary of {f.stem!r}")
    return d


def with_provenance(d: dict[str, Any], folder: Path, f: Path) -> dict[str, Any]:
    """A property summary of older code, which did not record where each run ran, from which pretraining stage and
    by what protocol: read from its runs' manifests in `folder`/finetune (as this code records them)."""
    rows, protocols = [], []
    for r in d["runs"]:
        path = folder / "finetune" / stage_key(r) / "manifest.json"
        if not path.is_file():
            raise SummaryError(
                f"{f}: a property summary of older code, and its runs' manifests are not in "
                f"{folder / 'finetune'}: summarise the results folder it was made in"
            )
        where, protocol = run_record(read_json(path))
        rows.append({**r, **where})
        protocols.append(protocol)
    return {**d, **one_protocol(protocols, str(f)), "runs": rows}


def collect(folders: Iterable[str | Path], properties: list[str] | None = None) -> Runs:
    """The runs of `folders` (each holding `properties/<p>.json` and the pretraining stages its runs name, under
    `pretrain/`), merged and checked to be one protocol; `properties`: only these. A pretraining stage in two folders
    must be the same encoder (a GPU's run of the same stage may give other bytes)."""
    runs = Runs()
    for folder in map(Path, folders):
        targets = summaries(folder)
        if not targets:
            raise SummaryError(f"{folder}: no property summary (properties/*.json): not a results folder")
        for m in sorted((folder / "pretrain").glob("*/manifest.json")):
            man, name = read_json(m), m.parent.name
            if name in runs.pretrain and encoder_sha(man) != encoder_sha(runs.pretrain[name]):
                raise SummaryError(
                    f"{folder}: pretraining stage {name} holds another encoder than in "
                    f"{runs.pretrain_dirs[name].parents[1]} (a GPU is not bit-reproducible): keep one"
                )
            if name not in runs.pretrain:
                runs.pretrain[name], runs.pretrain_dirs[name] = man, m.parent
        for f in targets:
            if properties is None or f.stem in properties:
                d = read_summary(f)
                if "finetune_code" not in d:
                    d = with_provenance(d, folder, f)
                runs.add(str(folder), d)
                for r in d["runs"]:
                    if (folder / "finetune" / stage_key(r) / "manifest.json").is_file():
                        runs.run_dirs.setdefault(stage_key(r), folder / "finetune" / stage_key(r))
    missing = sorted(set(properties or []) - set(runs.props))
    if missing:
        raise SummaryError(f"none of {', '.join(map(str, folders))} has {', '.join(missing)}")
    runs.check()
    return runs


def encoder_sha(manifest: dict[str, Any]) -> str | None:
    return manifest.get("files", {}).get("encoder.pt", {}).get("sha256")


def confirmatory_of(config: dict[str, Any] | None) -> list[Named] | None:
    """The comparisons a config named before the runs (`statistics.confirmatory`), or None where it named none."""
    named = ((config or {}).get("statistics") or {}).get("confirmatory")
    if named is None:
        return None
    try:
        return [Named(**Comparison.model_validate(c).model_dump()) for c in named]
    except (TypeError, ValidationError) as err:
        raise SummaryError(
            "statistics.confirmatory: a list of {method: M, property: P, against: A, across: B} (all but method "
            f"optional): {named!r}"
        ) from err
