"""Parts of a benchmark that runs longer than one sitting: each part's finetuning results and pretrained encoders,
kept in git (bench/parts/NAME/), merged by bench/summarize_mp.py --parts.

    # after a part's run (e.g. one property, or the config's fractions cut to two):
    .venv/bin/python bench/parts.py save --config bench/configs/mp.yaml --name kvrh-scratch --properties log10_K_VRH
    # a later part on another machine: put the saved encoders back, so that pretraining is not run again
    .venv/bin/python bench/parts.py restore --config bench/configs/mp.yaml --name kvrh-scratch
    # every part together, one summary with one Holm family
    .venv/bin/python bench/summarize_mp.py --config bench/configs/mp.yaml --parts kvrh-scratch kvrh-negnn --name mp

A part holds, per property, every run's row of the property summary (the run's metrics, chosen learning rate and
step, and where it ran: device, wall time, the pretraining stage it started from), and the pretraining stages those
runs used (manifest, history and encoder.pt: ~0.3 MB each for CGCNN 3 x 64). Not the finetuned models or
predictions (a run's model.pt is as large as its encoder, and a benchmark has thousands of runs).

A restored encoder is reused only where the later run's plan gives its pretraining stage the same key (the same
pretraining parameters, pool, leakage guard, code and library versions); any change there trains it again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "bench" / "parts"
PRETRAIN_FILES = ("encoder.pt", "history.json", "manifest.json")  # the stage's outputs, the manifest last
# what identifies a run within a property: two parts with the same of these but another stage key disagree
RUN_ID = ("method", "pretrain_seed", "pretrain_epochs", "fold", "fraction", "seed")


@dataclass
class Runs:
    """The runs of a benchmark (or of some of its parts), ready for the summary."""

    props: dict[str, dict] = field(default_factory=dict)  # property -> its fields (unit, transform, kind) and "runs"
    pretrain: dict[str, dict] = field(default_factory=dict)  # pretraining stage key -> its manifest
    pretrain_dirs: dict[str, Path] = field(default_factory=dict)  # pretraining stage key -> its folder (from_root)
    commits: dict[str, str] = field(default_factory=dict)  # part name (or "run") -> the commit of the code that ran it

    def add(self, name: str, prop: str, d: dict, commit: str) -> None:
        """Adds the runs of one property of one part; a run already here (the same stage key) is kept once."""
        have = self.props.setdefault(prop, {**{k: v for k, v in d.items() if k != "runs"}, "runs": []})
        for k in ("unit", "transform", "kind", "per_atom", "classes"):
            if have.get(k) != d.get(k):
                raise SystemExit(f"part {name}: property {prop} has {k} {d.get(k)!r}, an earlier part {have.get(k)!r}")
        seen = {r["dir"].rsplit("/", 1)[-1]: r for r in have["runs"]}
        ids = {tuple(r.get(k) for k in RUN_ID): r for r in have["runs"]}
        for r in d["runs"]:
            key = r["dir"].rsplit("/", 1)[-1]
            if key in seen:
                continue
            twin = ids.get(tuple(r.get(k) for k in RUN_ID))
            if twin is not None:
                raise SystemExit(f"part {name}: run {key} of {prop} is run {twin['dir'].rsplit('/', 1)[-1]} of an earlier "
                                 "part made with other code or settings: merge parts of one protocol only")  # fmt: skip
            have["runs"].append(r)
            seen[key], ids[tuple(r.get(k) for k in RUN_ID)] = r, r
        self.commits[name] = commit


def from_root(root: Path, plan, properties: list[str]) -> Runs:
    """The runs of `properties` in a results folder, through the plan's per-property targets (named by the plan,
    not hashed) and the runs' manifests (where each ran, the pretraining stage it started from)."""
    runs = Runs()
    for prop in properties:
        d = json.loads((root / plan.property_target(prop)).read_text())
        rows = []
        for r in d["runs"]:
            man = json.loads((root / r["dir"] / "manifest.json").read_text())
            pre = man["upstream"].get("pretrain", {}).get("dir")  # (a foundation method's runs have none)
            rows.append({**r, "device": man.get("device", "cpu"), "wall_s": man.get("wall_s"),
                         "pretrain": pre.rsplit("/", 1)[-1] if pre else None})  # fmt: skip
            if pre and rows[-1]["pretrain"] not in runs.pretrain:
                runs.pretrain[rows[-1]["pretrain"]] = json.loads((root / pre / "manifest.json").read_text())
                runs.pretrain_dirs[rows[-1]["pretrain"]] = root / pre
        runs.add("run", prop, {**d, "runs": rows}, "")
    return runs


def from_parts(names: list[str], properties: list[str] | None, parts: Path = PARTS) -> Runs:
    runs = Runs()
    for name in names:
        folder = parts / name
        meta = json.loads((folder / "part.json").read_text())
        for f in sorted((folder / "properties").glob("*.json")):
            if properties is None or f.stem in properties:
                runs.add(name, f.stem, json.loads(f.read_text()), meta["commit"])
        for m in sorted((folder / "pretrain").glob("*/manifest.json")):
            runs.pretrain.setdefault(m.parent.name, json.loads(m.read_text()))
    missing = sorted(set(properties or []) - set(runs.props))
    if missing:
        raise SystemExit(f"no part of {names} has {missing}")
    return runs


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def save(args: argparse.Namespace, plan) -> None:
    root, folder = Path(args.root), Path(args.parts_dir) / args.name
    if folder.exists():
        raise SystemExit(f"{folder} exists: a part is written once (remove it to write it again)")
    runs = from_root(root, plan, args.properties or list(plan.cfg.properties))
    (folder / "properties").mkdir(parents=True)
    for prop, d in runs.props.items():
        (folder / "properties" / f"{prop}.json").write_text(json.dumps(d, indent=1) + "\n")
    for key, src in runs.pretrain_dirs.items():
        (folder / "pretrain" / key).mkdir(parents=True)
        for name in PRETRAIN_FILES:  # (scratch's encoder.pt is a random start, which its runs redraw: small all the same)
            shutil.copyfile(src / name, folder / "pretrain" / key / name)
    meta = {"name": args.name, "config": args.config, "commit": args.commit or git_commit(), "root": str(root),
            "properties": sorted(runs.props), "n_runs": {p: len(d["runs"]) for p, d in runs.props.items()},
            "pretrain": sorted(runs.pretrain), "saved": time.strftime("%Y-%m-%d"), "host": socket.gethostname()}  # fmt: skip
    (folder / "part.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"saved {sum(meta['n_runs'].values())} runs of {meta['properties']} and {len(runs.pretrain)} pretraining stages "
          f"to {folder}")  # fmt: skip


def restore(args: argparse.Namespace, plan) -> None:
    """Copies a part's pretraining stages into the results folder where this plan has a stage of the same key.
    Its inputs (the pool's graphs, the leakage guard, fingerprints) must exist first: a stage older than its
    inputs would be made again by Snakemake's timestamp check."""
    folder = Path(args.parts_dir) / args.name
    wanted = {s.key: s for s in plan.stages.values() if s.kind == "pretrain"}
    missing_inputs, copied, other = set(), [], []
    for src in sorted((folder / "pretrain").iterdir()):
        stage = wanted.get(src.name)
        if stage is None:
            other.append(src.name)
            continue
        missing_inputs |= {f for f in stage.upstream_files() if not (Path(args.root) / f).exists()}
    if missing_inputs:
        files = " ".join(sorted(missing_inputs))
        raise SystemExit(
            f"make the pretraining stages' inputs first:\n  snakemake --cores all {files} --configfile {args.config}"
        )
    for src in sorted((folder / "pretrain").iterdir()):
        if src.name in wanted:
            dest = Path(args.root) / wanted[src.name].dir
            if (dest / "manifest.json").exists():
                continue
            dest.mkdir(parents=True, exist_ok=True)
            for name in PRETRAIN_FILES:
                if (src / name).exists():
                    shutil.copyfile(src / name, dest / name)
            copied.append(src.name)
    print(f"restored {len(copied)} pretraining stages: {', '.join(copied) or 'none'}")
    if other:
        print(f"not in this plan (other settings, code or library versions; they will be trained again): {', '.join(other)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("--config", required=True, help="the benchmark's config, as the part was run with it")
    parser.add_argument("--name", required=True, help="the part: bench/parts/NAME")
    parser.add_argument("--root", default=str(ROOT), help="the folder the run was made in (default: this checkout)")
    parser.add_argument("--properties", nargs="+", help="save only these properties of the config")
    parser.add_argument("--commit", help="save: the commit of the code that ran the part (default: this checkout's HEAD)")
    parser.add_argument("--parts-dir", default=str(PARTS), help=argparse.SUPPRESS)  # (tests write elsewhere)
    args = parser.parse_args(argv)
    from matssl.config import load_config
    from matssl.stages import Plan

    config = Path(args.config) if Path(args.config).is_absolute() else Path(args.root) / args.config
    plan = Plan(load_config(config))
    save(args, plan) if args.action == "save" else restore(args, plan)


if __name__ == "__main__":
    sys.exit(main())
