"""Pretraining at scale, measured: each finished pretraining stage's wall time, peak memory, throughput, loss and
convergence signals, from its own manifest and history (nothing is run here). Throughput is in crystals (the
training loop's items): a two-view objective passes each crystal through the encoder twice, a single-view one once.

    .venv/bin/python bench/pool_pretrain.py --commit ff7d9f5 --out mp_large_pretrain \\
        results-bench/mp_large/pretrain/fingerprint-s0-9bb677a0a534 results-bench/mp_large/pretrain/crystalclr-s0-...

Writes bench/results/<out>.json and .md. `--note STAGE=TEXT` records what the numbers do not say (another job
sharing the cores during some epochs, say); `--save-encoder STAGE=NAME` copies the stage's encoder.pt to
bench/results/encoders/NAME.pt, importable as `{objective: pretrained, params: {path: ...}}`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from matssl import convergence, read_json

ROOT = Path(__file__).resolve().parents[1]


def record(stage: Path) -> dict:
    """One stage's numbers, from its manifest and per-epoch history."""
    m, history = read_json(stage / "manifest.json"), read_json(stage / "history.json")
    p = m["params"]
    speed = [h["graphs_per_s"] for h in history if "graphs_per_s" in h]
    conv = convergence(history)
    return {
        "stage": stage.name,
        "method": p["method"],
        "objective": p["objective"],
        "objective_params": p.get("objective_params"),
        "optim": p.get("optim"),
        "encoder": p.get("encoder"),
        "n_pool": m.get("n_pool"),
        "excluded_by": m.get("excluded_by"),
        "crystals_seen": (m.get("n_pool") or 0) * len(history),
        "epochs_run": len(history),
        "device": m.get("device"),
        "precision": m.get("precision"),
        "threads": m.get("runtime", {}).get("threads"),
        "wall_s": m["wall_s"],
        "peak_memory_mb": m["peak_memory_mb"],
        "crystals_per_s_epochs": [min(speed), max(speed)] if speed else None,
        "loss_first_last": [history[0].get("loss"), history[-1].get("loss")] if history else None,
        "late_share": conv["late_share"],
        "flags": conv["flags"],
        "embedding_spread_last": history[-1].get("embedding_spread") if history else None,
        "embedding_rank_first_last": [history[0].get("embedding_rank"), history[-1].get("embedding_rank")] if history else None,
        "encoder_sha256": m["files"]["encoder.pt"]["sha256"],
        "started": m.get("started"),
        "ended": m.get("ended"),
    }


def pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{what} {item!r}: STAGE=TEXT")
        out[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stages", nargs="+", type=Path, help="finished pretraining stage folders")
    ap.add_argument("--commit", required=True, help="the commit of the code that ran them")
    ap.add_argument("--out", default="mp_large_pretrain")
    ap.add_argument("--note", action="append", default=[], help="STAGE=TEXT")
    ap.add_argument("--save-encoder", action="append", default=[], help="STAGE=NAME")
    args = ap.parse_args()
    notes, saves = pairs(args.note, "--note"), pairs(args.save_encoder, "--save-encoder")
    rows = []
    for stage in args.stages:
        r = record(stage) | ({"note": notes[stage.name]} if stage.name in notes else {})
        if stage.name in saves:
            dest = ROOT / "bench" / "results" / "encoders" / f"{saves[stage.name]}.pt"
            shutil.copyfile(stage / "encoder.pt", dest)
            r["encoder_file"] = str(dest.relative_to(ROOT))
        rows.append(r)
    out = ROOT / "bench" / "results" / args.out
    out.with_suffix(".json").write_text(json.dumps({"commit": args.commit, "stages": rows}, indent=1) + "\n")
    lines = [
        f"Pretraining stages (code at {args.commit}; `python bench/pool_pretrain.py ...`: read from their manifests)",
        "",
        "| method | epochs | pool | crystals seen | wall (s) | peak (MB) | crystals/s an epoch | loss first → last | late share | flags | spread, rank (last) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = "–" if not r["crystals_per_s_epochs"] else "–".join(f"{v:,.0f}" for v in r["crystals_per_s_epochs"])
        late = "–" if r["late_share"] is None else f"{100 * r['late_share']:.0f} %"
        first, last = r["loss_first_last"] or (None, None)
        lines.append(
            f"| {r['method']} | {r['epochs_run']} | {r['n_pool']:,} | {r['crystals_seen'] / 1e6:.2f} M | {r['wall_s']:,.0f} | "
            f"{r['peak_memory_mb']:,.0f} | {speed} | {first:.4g} → {last:.4g} | {late} | {'; '.join(r['flags']) or '–'} | "
            f"{r['embedding_spread_last']:.2f}, {r['embedding_rank_first_last'][1]:.2f} |"
        )
    lines += [""] + [f"- {r['method']}, {r['epochs_run']} epochs: {r['note']}" for r in rows if "note" in r]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
