"""The Materials Project API key reaches the download and nothing else: no log, manifest, hash,
parquet, checkpoint or report contains it."""

from __future__ import annotations

import gzip
import secrets

import pyarrow.parquet as pq
import pytest
from pymatgen.core import Lattice, Structure

from .workflow import snakemake, write_config

pytestmark = pytest.mark.e2e


def mp_config() -> dict:
    return {
        "datasets": {"mp": {"kind": "mp", "criteria": {"band_gap": [0, 10]}, "fields": ["band_gap"], "chunk_size": 4}},
        "graphs": {"cutoff": 6.0, "max_neighbors": 8},
        "encoder": {"width": 8, "layers": 1},
        "augment": {"n_views": 2},
        "pretrain": {
            "pool": "mp",
            "optim": {"epochs": 1, "batch_size": 4},
            "methods": {"scratch": {"objective": "scratch"}, "crystalclr": {"objective": "crystalclr"}},
        },
        "finetune": {"optim": {"max_steps": 2, "batch_size": 4, "lrs": [0.001]}, "fractions": [1.0], "seeds": [0], "min_val": 2},
        "probes": {"models": ["ridge"], "baselines": ["magpie"]},
        "properties": {"gap": {"dataset": "mp", "column": "band_gap", "folds": "kfold", "n_folds": 3}},
    }


def readable_texts(path) -> list[bytes]:
    """The bytes of a file, plus what compression would hide: gzip contents and parquet values."""
    raw = path.read_bytes()
    out = [raw]
    if raw[:2] == b"\x1f\x8b":
        out.append(gzip.decompress(raw))
    if raw[:4] == b"PAR1":
        out.append(str(pq.read_table(path).to_pylist()).encode())
    return out


def test_api_key_appears_in_no_output(fake_mp, tmp_path, monkeypatch):
    key = secrets.token_hex(16)  # mp-api checks for 32 characters
    monkeypatch.setenv("MP_API_KEY", key)
    elements = [("Na", "Cl"), ("K", "Br"), ("Mg", "O"), ("Li", "F"), ("Ca", "S"), ("Rb", "I")]
    fake_mp.structures = {
        f"mp-{i}": Structure(Lattice.cubic(4.0 + 0.15 * i), list(elements[i % 6]), [[0, 0, 0], [0.5, 0.5, 0.5]])
        for i in range(12)
    }
    write_config(tmp_path, mp_config())
    snakemake(tmp_path, "--cores", "2", "all")
    assert (tmp_path / "results" / "report.html").exists()
    assert any(key in r[2].get("x-api-key", "") for r in fake_mp.requests)  # the key was used ...
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "config.yaml"]
    assert len(files) > 40
    leaks = [str(p) for p in files if any(key.encode() in t for t in readable_texts(p))]
    assert leaks == []  # ... and written nowhere


def test_planning_needs_no_api_key(tmp_path, monkeypatch):
    """The key is read by the download job only: a dry run, or a run whose download is cached, needs none."""
    monkeypatch.delenv("MP_API_KEY", raising=False)
    write_config(tmp_path, mp_config())
    out = snakemake(tmp_path, "--dry-run", "--cores", "1", "all")
    assert "download" in out.stdout + out.stderr
