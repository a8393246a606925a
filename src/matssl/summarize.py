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

from matssl.io import InputError, read_json, spec_digest, write_json
from matssl.stats import SCORES, Analysis, analyse, summarize_runs

# what a property summary's runs share (kept once per property)
PROPERTY_FIELDS = ("property", "unit", "transform", "kind", "per_atom", "classes")
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


def run_id(run: dict[str, Any]) -> tuple:
    return tuple(run.get(k) for k in RUN_ID)


# --------------------------------------------------------------------------- one property's summary (the workflow's)
def summarize_property(spec: dict[str, Any], out: Path) -> None:
    """The per-property target: every run's metrics, where it ran (device, wall time) and from which pretraining stage
    (its folder's name; none for a foundation model), the protocol its runs share, and the per-method summary."""
    kind = spec.get("kind", "regression")
    sc = SCORES[kind]
    keep = ["method", "base_method", "pretrain_epochs", "pretrain_seed", "fold", "fraction", "seed", "precision", sc.primary,
            *sc.others, "n_train", "n_val", "n_test", "n_train_fold", "lr", sc.val, "best_step", "steps", "stopped", "hit_cap"]  # fmt: skip
    rows, protocol = [], {k: [] for k in PROTOCOL_FIELDS}
    for d in spec["runs"]:
        m, man = read_json(Path(d) / "metrics.json"), read_json(Path(d) / "manifest.json")
        dummy = {f"dummy_{k}_{metric}": v for k, scores in m["dummy"].items() for metric, v in scores.items()}
        clipped = {"n_test_clipped": m.get("n_test_clipped", math.nan)}  # (a regression's; NaN: runs from before it was)
        pre = man["upstream"].get("pretrain", {}).get("dir")  # (a foundation model's runs have none)
        where = {"device": man.get("device", "cpu"), "wall_s": man.get("wall_s"), "pretrain": Path(pre).name if pre else None}
        rows.append({k: m[k] for k in keep} | clipped | dummy | {"dir": d} | where)
        for k, v in (("finetune", man["params"]["finetune"]), ("finetune_code", man["code"]),
                     ("splits", man["upstream"]["splits"]["hash"])):  # fmt: skip
            if v not in protocol[k]:
                protocol[k].append(v)
    mixed = [k for k, v in protocol.items() if len(v) > 1]
    if mixed:  # (a plan gives every run of a property one protocol: only a hand-made spec mixes them)
        raise SummaryError(f"{spec['property']}: its runs differ in {', '.join(mixed)}")
    runs = pd.DataFrame(rows)
    summary = summarize_runs(runs, kind=kind)
    folds = read_json(Path(spec["splits"]) / "folds.json") if spec.get("splits") else {}
    write_json({"property": spec["property"], "spec_digest": spec_digest(spec), "unit": spec.get("unit", ""),
                "kind": kind, "classes": folds.get("classes"), "transform": spec.get("transform", "none"),
                "per_atom": spec.get("per_atom", "none"), "atoms_spearman": folds.get("atoms_spearman"),
                **{k: v[0] if v else None for k, v in protocol.items()},
                "summary": summary.to_dict("records"), "runs": runs.to_dict("records")}, out)  # fmt: skip


# --------------------------------------------------------------------------- several results folders, one set of runs
@dataclass
class Runs:
    """The runs of one or several results folders, merged: per property its fields and runs, and the pretraining
    stages the runs started from."""

    props: dict[str, dict] = field(default_factory=dict)  # property -> its fields (unit, kind, protocol) and "runs"
    pretrain: dict[str, dict] = field(default_factory=dict)  # pretraining stage folder name -> its manifest
    pretrain_dirs: dict[str, Path] = field(default_factory=dict)  # pretraining stage folder name -> where it is
    sources: dict[str, int] = field(default_factory=dict)  # folder -> how many runs it gave that no earlier one had

    def add(self, source: str, d: dict[str, Any]) -> None:
        """Adds one property summary's runs; a run already here (the same stage key) is kept once, and must have given
        the same numbers; a run of the same method, fold, fraction and seeds under another key is another protocol."""
        prop = d["property"]
        have = self.props.setdefault(prop, {**{k: d.get(k) for k in PROPERTY_FIELDS + PROTOCOL_FIELDS}, "runs": []})
        for k in PROPERTY_FIELDS + PROTOCOL_FIELDS:
            if have.get(k) != d.get(k):
                raise SummaryError(f"{source}: property {prop} has another {k} than an earlier folder: "
                                   f"{d.get(k)!r} against {have.get(k)!r}")  # fmt: skip
        seen = {stage_key(r): r for r in have["runs"]}
        ids = {run_id(r): r for r in have["runs"]}
        added = 0
        for r in d["runs"]:
            twin = seen.get(stage_key(r))
            if twin is not None:
                if {k: v for k, v in twin.items() if k not in WHERE} != {k: v for k, v in r.items() if k not in WHERE}:
                    raise SummaryError(f"{source}: run {stage_key(r)} of {prop} gave other numbers in an earlier folder "
                                       "(a GPU is not bit-reproducible): keep one of the two")  # fmt: skip
                continue
            if run_id(r) in ids:
                raise SummaryError(f"{source}: run {stage_key(r)} of {prop} is run {stage_key(ids[run_id(r)])} of an "
                                   "earlier folder made with other code or settings: merge runs of one protocol only")  # fmt: skip
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
                        raise SummaryError(f"run {stage_key(r)} of {prop} started from pretraining stage {r['pretrain']}, "
                                           "which none of the folders holds (pretrain/<stage>/manifest.json)")  # fmt: skip
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

    def frame(self) -> pd.DataFrame:
        """Every run, one row each, with its property."""
        return pd.concat([pd.DataFrame(d["runs"]).assign(property=p) for p, d in self.props.items()], ignore_index=True)

    def analyse(self, confirmatory: list[tuple[str, str | None]] | None = None) -> Analysis:
        """The statistics' families over every run (`stats.analyse`)."""
        data = {p: (pd.DataFrame(d["runs"]), d.get("kind") or "regression") for p, d in self.props.items()}
        return analyse(data, foundation=self.foundation, confirmatory=confirmatory)


def collect(folders: Iterable[str | Path], properties: list[str] | None = None) -> Runs:
    """The runs of `folders` (each holding `properties/<p>.json` and the pretraining stages its runs name, under
    `pretrain/`), merged and checked to be one protocol; `properties`: only these."""
    runs = Runs()
    for folder in map(Path, folders):
        targets = sorted((folder / "properties").glob("*.json"))
        if not targets:
            raise SummaryError(f"{folder}: no property summary (properties/*.json): not a results folder")
        for m in sorted((folder / "pretrain").glob("*/manifest.json")):
            if m.parent.name not in runs.pretrain:
                runs.pretrain[m.parent.name], runs.pretrain_dirs[m.parent.name] = read_json(m), m.parent
        for f in targets:
            if properties is None or f.stem in properties:
                d = read_json(f)
                if "finetune_code" not in d:
                    raise SummaryError(f"{f}: a property summary of older code (no protocol recorded): re-make it with "
                                       "`snakemake --cores all <that file>`")  # fmt: skip
                runs.add(str(folder), d)
    missing = sorted(set(properties or []) - set(runs.props))
    if missing:
        raise SummaryError(f"none of {', '.join(map(str, folders))} has {', '.join(missing)}")
    runs.check()
    return runs


def confirmatory_of(config: dict[str, Any] | None) -> list[tuple[str, str | None]] | None:
    """The comparisons a config named before the runs (`statistics.confirmatory`), or None where it named none."""
    named = ((config or {}).get("statistics") or {}).get("confirmatory")
    return None if named is None else [(c["method"], c.get("property")) for c in named]
