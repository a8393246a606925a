"""The leakage guard: pool structures that are downstream test structures, by id, by composition and
volume, and by structure matching."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

from matssl.io import write_json
from matssl.leakage import composition_key, leaked_ids
from matssl.table import Crystal, to_arrow, write_table

from .conftest import crystal


def rows(*crystals: Crystal):
    return to_arrow(list(crystals), [], "test").to_pandas()


def renamed(c: Crystal, id_: str, scale: float = 1.0) -> Crystal:
    return Crystal(id_, c.lattice * scale, c.numbers, c.frac)


def test_composition_key_ignores_the_cell():
    fe2o3 = [26, 26, 8, 8, 8]
    assert composition_key(fe2o3) == composition_key(fe2o3 * 4) == "Z8:3 Z26:2"
    assert composition_key([11, 17]) != composition_key([11, 11, 17])


def test_composition_volume_match_has_a_tolerance(nacl, silicon):
    supercell = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3]) * (2, 1, 1)
    pool = rows(
        renamed(nacl, "same"),  # another id for the test crystal
        crystal(supercell, "supercell"),  # same crystal, other cell
        renamed(nacl, "strained", 1.005),  # volume +1.5 %: inside 2 %
        renamed(nacl, "expanded", 1.05),  # volume +16 %: a different crystal
        renamed(silicon, "si"),
    )
    test = rows(nacl)
    found = leaked_ids(pool, test, ["id", "composition_volume"], tolerance=0.02)
    assert found["id"] == set()
    assert found["composition_volume"] == {"same", "supercell", "strained"}
    assert leaked_ids(pool, rows(renamed(nacl, "same")), ["id"], 0.02) == {"id": {"same"}}


def test_structure_matching_tells_polymorphs_apart(nacl):
    # NaCl in the CsCl structure, scaled to the rocksalt volume per atom: composition + volume cannot tell
    v = abs(np.linalg.det(nacl.lattice)) / len(nacl.numbers)  # volume per atom
    cscl = crystal(Structure(Lattice.cubic((2 * v) ** (1 / 3)), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3]), "cscl-type")
    pool = rows(cscl, renamed(nacl, "rocksalt", 1.01))
    found = leaked_ids(pool, rows(nacl), ["composition_volume", "structure"], tolerance=0.05)
    assert found["composition_volume"] == {"cscl-type", "rocksalt"}
    assert found["structure"] == {"rocksalt"}


def test_the_leakage_stage_finds_test_structures_once_for_every_pretraining_job(tmp_path, nacl, silicon, triclinic):
    from matssl.leakage import run_leakage
    from matssl.pretrain import excluded_ids
    from matssl.report import excluded_text

    def table(name: str, *crystals: Crystal) -> str:
        write_table(to_arrow(list(crystals), [], "test"), tmp_path / name / "structures.parquet")
        return str(tmp_path / name)

    v = abs(np.linalg.det(nacl.lattice)) / len(nacl.numbers)
    cscl = crystal(Structure(Lattice.cubic((2 * v) ** (1 / 3)), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3]), "p-cscl")
    pool = table("pool", renamed(nacl, "p-nacl", 1.05), cscl, renamed(silicon, "shared-id"), renamed(triclinic, "p-tri"))
    down = table("down", renamed(nacl, "d-nacl"), renamed(silicon, "shared-id"), renamed(triclinic, "d-tri-train"))
    write_json(
        {"folds": [{"train": ["d-tri-train"], "test": ["d-nacl"]}, {"train": [], "test": ["shared-id"]}]},
        tmp_path / "splits" / "folds.json",
    )
    spec = {
        "params": {"exclude_match": ["id", "composition_volume", "structure"], "volume_tolerance": 0.02},
        "upstream": {"structures": pool, "splits:x": str(tmp_path / "splits"), "structures:x": down},
        "runtime": {"threads": 2},  # the structure matcher's worker processes
    }
    out = tmp_path / "leakage"
    out.mkdir()
    facts = run_leakage(spec, out)
    found = excluded_ids({"upstream": {"leakage": str(out)}})
    assert found["id"] == {"shared-id"}
    # CsCl-type NaCl has the test crystal's volume per atom: composition + volume takes it, the matcher does not;
    # the rocksalt pool entry is 16 % larger (outside 2 %), which the matcher (it scales volumes) still recognises;
    # p-tri is like a training structure only
    assert found["composition_volume"] == {"p-cscl", "shared-id"}
    assert found["structure"] == {"p-nacl", "shared-id"}
    assert facts["n_excluded"] == 3 and facts["excluded_by"] == {"id": 1, "composition_volume": 2, "structure": 2}
    assert facts["only_by"] == {"id": 0, "composition_volume": 1, "structure": 1}
    assert facts["n_test"] == 2 and facts["n_pool"] == 4
    assert excluded_text(facts) == "3 (id 1, composition + volume 2; structure 2, 1 found by it alone)"
    assert excluded_ids({"upstream": {}}) == {}  # the guard off: no leakage stage upstream
    # by id alone: the plan leaves the unused tolerance out of the parameters
    facts = run_leakage({**spec, "params": {"exclude_match": ["id"]}}, out)
    assert facts["excluded_by"] == {"id": 1} and excluded_ids({"upstream": {"leakage": str(out)}}) == {"id": {"shared-id"}}
