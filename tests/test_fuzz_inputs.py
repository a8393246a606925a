"""Generated bad inputs (hypothesis): structure files, labels CSVs and configs through the config check and ingest.

What must hold for any of them: no traceback reaches the user (the config check raises only `ConfigError`, ingest
only `SourceError`, each with its message), no valid row is lost (an intact structure with a number or no label is
kept), and every rejected row has a reason. Examples are derandomised: CI runs the same ones every time.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import re
import shutil
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas._libs.parsers import STR_NA_VALUES
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter
from pymatgen.io.vasp import Poscar

from matssl.cli import main
from matssl.config import ConfigError
from matssl.ingest import run_ingest
from matssl.sources import TABLE_COLUMNS, SourceError
from matssl.stages import Plan
from matssl.table import read_table
from matssl.validate import parse_config

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BASES = [
    Structure(Lattice.cubic(4.6), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    Structure(
        Lattice.from_parameters(4.1, 5.3, 6.2, 78, 95, 112),
        ["Ti", "O", "O", "Ba"],
        [[0, 0, 0], [0.3, 0.1, 0.2], [0.6, 0.7, 0.1], [0.5, 0.4, 0.8]],
    ),
]
TEXTS = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)


@st.composite
def structure_file(draw) -> tuple[str, bytes, bool]:
    """(suffix, bytes, intact): an intact CIF or POSCAR of a sound structure, or one broken some way."""
    base = draw(st.sampled_from(BASES))
    kind = draw(st.sampled_from(["cif", "poscar", "mutated", "truncated", "text", "binary", "empty"]))
    cif = str(CifWriter(base))
    if kind == "cif":
        return ".cif", cif.encode(), True
    if kind == "poscar":
        return ".vasp", Poscar(base).get_str().encode(), True
    if kind == "mutated":
        lines = cif.splitlines()
        for _ in range(draw(st.integers(1, 3))):
            lines[draw(st.integers(0, len(lines) - 1))] = draw(TEXTS)
        return draw(st.sampled_from([".cif", ".vasp"])), "\n".join(lines).encode(), False
    if kind == "truncated":
        return ".cif", cif[: draw(st.integers(0, len(cif) - 1))].encode(), False
    if kind == "text":
        return draw(st.sampled_from([".cif", ".vasp"])), draw(TEXTS).encode(), False
    if kind == "binary":
        return ".cif", draw(st.binary(max_size=300)), False
    return ".cif", b"", False


LABEL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.just(""),
    TEXTS,
)


NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(inf|infinity)\s*$", re.I)


def is_missing(cell: str) -> bool:
    return cell == "" or cell in STR_NA_VALUES


def text_columns(columns: dict[str, list[str]]) -> set[str]:
    """The documented rule, from the cells as written: a column is text when fewer than half of its present cells are
    numbers (independent of the code under test)."""
    out = set()
    for name, cells in columns.items():
        present = [c for c in cells if not is_missing(c)]
        if present and 2 * sum(bool(NUMBER.match(c)) for c in present) < len(present):
            out.add(name)
    return out


def is_number_or_missing(cell: str) -> bool:
    """A CSV cell that is a finite number, or missing as pandas reads it."""
    if cell == "" or cell in STR_NA_VALUES:
        return True
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


@given(
    files=st.lists(structure_file(), min_size=1, max_size=6),
    labels=st.lists(LABEL, min_size=6, max_size=6),
    extra_column=st.sampled_from(["note", "formula", "id", "y", "ünï code", "crystal_system"]),
    extra=st.lists(TEXTS, min_size=6, max_size=6),
    ghosts=st.integers(0, 2),
    raw_csv=st.one_of(st.none(), st.binary(max_size=200), TEXTS.map(str.encode)),
)
@settings(FUZZ, max_examples=300)
def test_generated_structure_files_and_labels(tmp_path_factory, files, labels, extra_column, extra, ghosts, raw_csv):
    tmp = tmp_path_factory.mktemp("fuzz")
    folder = tmp / "files"
    folder.mkdir()
    ids = [f"s{k}" for k in range(len(files))]
    for id_, (suffix, data, _) in zip(ids, files, strict=False):
        (folder / f"{id_}{suffix}").write_bytes(data)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "y", extra_column])
    rows = [*ids, *(f"ghost{k}" for k in range(ghosts))]
    for k, id_ in enumerate(rows):
        writer.writerow([id_, labels[k % 6], extra[k % 6]])
    (tmp / "labels.csv").write_bytes(buf.getvalue().encode() if raw_csv is None else raw_csv)  # (or not a CSV at all)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["datasets"]["mine"] = {"kind": "files", "path": str(folder), "labels": str(tmp / "labels.csv")}
    cfg["properties"] = {"y": {"dataset": "mine", "column": "y", "n_folds": 2}}
    try:
        parse_config(cfg)
    except ConfigError as err:
        assert str(err).startswith("invalid configuration:")  # one message, the key named
    source = cfg["datasets"]["mine"]
    valid = set()  # intact structures whose cells are numbers or missing, or text in a text column (kept as text)
    if raw_csv is None:
        extra_name = {"id": "id.1", "y": "y.1"}.get(extra_column, extra_column)  # (pandas renames a repeated header)
        text = text_columns(
            {"y": [labels[k % 6] for k in range(len(rows))], extra_name: [extra[k % 6] for k in range(len(rows))]}
        )
        for k, (_, _, intact) in enumerate(files):
            cells = {"y": labels[k % 6], extra_name: extra[k % 6]}
            if intact and all(c in text | TABLE_COLUMNS or is_number_or_missing(v) for c, v in cells.items()):
                valid.add(ids[k])
    try:
        run_ingest({"params": {"dataset": "mine", "source": source, "ingest": {}}}, tmp / "ingest")
    except SourceError as err:
        assert raw_csv is not None or "no usable structure" in str(err), err
        assert not valid, (valid, err)  # no valid row lost
        return
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if raw_csv is not None:
        return  # (a file that happens to read as a CSV with an id column: the structures' fate is its rows')
    kept = set(read_table(tmp / "ingest" / "structures.parquet")["id"])
    rejected = read_table(tmp / "ingest" / "rejected.parquet")
    assert kept | set(rejected["id"]) == set(rows)  # every row accounted for
    assert not kept & set(rejected["id"]) and rejected["reason"].str.len().gt(0).all()
    assert valid <= kept, rejected[rejected["id"].isin(valid - kept)]  # no valid row lost


def mutate(draw, cfg: dict) -> None:
    """Sets, deletes or retypes one value somewhere in a config."""
    if not cfg:
        return
    node, key = cfg, draw(st.sampled_from(sorted(cfg)))
    while isinstance(node[key], dict) and node[key] and not draw(st.booleans()):  # deeper, or this one
        node = node[key]
        key = draw(st.sampled_from(sorted(node)))
    value = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 10**9),
        st.floats(),
        TEXTS,
        st.lists(st.one_of(st.integers(-2, 5), TEXTS), max_size=3),
        st.dictionaries(TEXTS, st.integers(), max_size=2),
    )
    if draw(st.booleans()):
        node.pop(key)
    else:
        node[key] = draw(value)


@given(data=st.data())
@FUZZ
def test_generated_configs_give_one_message_or_a_plan(data):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        mutate(data.draw, cfg)
    try:
        Plan(parse_config(copy.deepcopy(cfg)))
    except ConfigError as err:
        assert str(err).startswith("invalid configuration:")


@given(text=st.one_of(TEXTS, st.text(alphabet=string.printable, max_size=200)))
@FUZZ
def test_check_config_of_any_text_says_one_thing(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as err:
        main(["check-config", str(path)])
    assert isinstance(err.value.code, str) and err.value.code  # the message, not a traceback


@st.composite
def extxyz_frame(draw) -> tuple[str, str, bool]:
    """(frame text, id, intact): a structure of BASES with an id and a label, or the same broken some way."""
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(draw(st.sampled_from(BASES)))
    atoms.info = {"id": draw(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6)), "y": draw(st.floats(-5, 5))}
    buf = io.StringIO()
    write(buf, atoms, format="extxyz")
    text = buf.getvalue()
    if draw(st.booleans()):
        return text, atoms.info["id"], True
    lines = text.splitlines()
    lines[draw(st.integers(1, len(lines) - 1))] = draw(TEXTS)  # (the first line, the atom count, kept: else the file is refused)
    return "\n".join(lines) + "\n", atoms.info["id"], False


@given(frames=st.lists(extxyz_frame(), min_size=1, max_size=5))
@FUZZ
def test_generated_extxyz_frames(tmp_path_factory, frames):
    tmp = tmp_path_factory.mktemp("xyz")
    (tmp / "s.extxyz").write_text("".join(text for text, _, _ in frames))
    source = {"kind": "files", "path": str(tmp / "s.extxyz")}
    try:
        run_ingest({"params": {"dataset": "mine", "source": source, "ingest": {}}}, tmp / "ingest")
    except SourceError as err:
        assert str(err)
        return
    kept = read_table(tmp / "ingest" / "structures.parquet")
    rejected = read_table(tmp / "ingest" / "rejected.parquet")
    assert len(kept) + len(rejected) == len(frames) and rejected["reason"].str.len().gt(0).all()
    ids = [id_ for _, id_, _ in frames]
    for _, id_, intact in frames:
        if intact and ids.count(id_) == 1:
            assert id_ in set(kept["id"]), rejected  # no valid frame lost
