"""Shared fixtures: small pymatgen crystals and a tiny slice of the shipped demo dataset."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from matssl.table import Crystal

from .fake_mp import fake_mp  # noqa: F401 (a fixture for the tests that talk to the Materials Project)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "matbench_dielectric.json.gz"
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (CI has none; run on a GPU machine)")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=CUDA)])
def device(request) -> torch.device:
    """Tests that take this run on the CPU and, where there is one, on a CUDA device."""
    return torch.device(request.param)


def crystal(s: Structure, id_: str = "x") -> Crystal:
    return Crystal(id_, s.lattice.matrix.copy(), np.array(s.atomic_numbers), s.frac_coords.copy())


@pytest.fixture
def nacl() -> Crystal:
    return crystal(Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]), "nacl")


@pytest.fixture
def silicon() -> Crystal:
    return crystal(Structure(Lattice.cubic(5.43), ["Si"] * 2, [[0, 0, 0], [0.25, 0.25, 0.25]]).get_primitive_structure(), "si")


@pytest.fixture
def triclinic() -> Crystal:
    lat = Lattice.from_parameters(4.1, 5.3, 6.2, 78, 95, 112)
    return crystal(Structure(lat, ["Ti", "O", "O", "Ba"], [[0, 0, 0], [0.3, 0.1, 0.2], [0.6, 0.7, 0.1], [0.5, 0.4, 0.8]]), "tri")


def demo_slice(n: int) -> dict:
    """The first n rows of the demo file, in its own column orient."""
    with gzip.open(DEMO, "rt") as fh:
        raw = json.load(fh)
    keep = [str(i) for i in range(n)]
    return {col: {k: vals[k] for k in keep} for col, vals in raw.items()}


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny_dielectric.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump(demo_slice(48), fh)
    return path


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory, tiny_demo):
    """The real workflow, run once per test session on the tiny config: (workdir, config)."""
    from .bad_inputs import write_corpus
    from .workflow import snakemake, tiny_config, write_config

    workdir = tmp_path_factory.mktemp("run")
    cfg = tiny_config(tiny_demo)
    # the bad-input corpus is the pretraining pool: its rejections must reach the report
    labels = write_corpus(workdir / "corpus")
    cfg["datasets"]["corpus"] = {"kind": "files", "path": str(workdir / "corpus"), "labels": str(labels)}
    cfg["pretrain"]["pool"] = "corpus"
    write_config(workdir, cfg)
    snakemake(workdir, "--cores", "2", "all")
    return workdir, cfg
