"""Data sources: Matbench files, folders of CIF/POSCAR, extended XYZ, and Materials Project.

Readers yield `Crystal`s or `Rejected(id, reason)`; `ingest.py` validates and writes the canonical
table. Downloads (Matbench URL, mp-api) are separate functions so that the workflow can run them as
local jobs on a login node, and they fail with a clear message when offline.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matssl.elements import atomic_number
from matssl.io import InputError, atomic_path, read_json, write_json
from matssl.table import BASE_COLUMNS, META_COLUMNS, Crystal

log = logging.getLogger(__name__)

MATBENCH_URL = "https://ml.materialsproject.org/projects/{task}.json.gz"
STRUCTURE_SUFFIXES = {".cif", ".vasp", ".poscar"}
STRUCTURE_NAMES = {"POSCAR", "CONTCAR"}
TABLE_COLUMNS = {*BASE_COLUMNS, *META_COLUMNS}  # the structure table's own columns: never labels
DISORDERED = "disordered site (partial occupancy)"  # rejected, not ordered: ordering would invent structures


@dataclass
class Rejected:
    id: str
    reason: str


class SourceError(InputError):
    """The whole input is unusable (missing file, wrong format, offline download)."""


# --------------------------------------------------------------------------- pymatgen dicts
def crystal_from_pmg_dict(id_: str, d: dict[str, Any]) -> Crystal | Rejected:
    """Parse a pymatgen `Structure.as_dict()` without building a Structure (10x faster)."""
    try:
        lattice = np.asarray(d["lattice"]["matrix"], dtype=float)
        numbers, frac = [], []
        for site in d["sites"]:
            species = site["species"]
            if len(species) != 1 or abs(float(species[0].get("occu", 1.0)) - 1.0) > 1e-6:
                return Rejected(id_, DISORDERED)
            numbers.append(atomic_number(species[0]["element"]))
            frac.append(site["abc"])
    except (KeyError, TypeError, ValueError) as err:
        return Rejected(id_, f"unparseable structure: {type(err).__name__}: {err}")
    return Crystal(id_, lattice, np.asarray(numbers, dtype=np.int64), np.asarray(frac, dtype=float).reshape(-1, 3))


def _label(value: Any, column: str) -> float | None:
    """A label as a float, or None when missing; raises ValueError for junk (text in a numeric column, inf)."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"column {column!r}: {str(value)[:40]!r} is not a number") from None
    if math.isnan(v):
        return None
    if not math.isfinite(v):
        raise ValueError(f"column {column!r}: non-finite value {value!r}")
    return v


def column_is_text(values: pd.Series) -> bool:
    """A labels column is text (class names, formulas) when fewer than half of its values are numbers; in a numeric
    column, a value that is not a number is an invalid label of its row (a typo, not a class)."""
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(present) or present.empty:
        return False
    numbers = pd.to_numeric(present.astype(str).str.strip(), errors="coerce").notna().sum()
    return 2 * numbers < len(present)


def labels_csv(path: str | Path, header_only: bool = False) -> pd.DataFrame:
    """A labels CSV as read (or only its header), which needs an `id` column: the structure file's name."""
    try:
        df = pd.read_csv(path, dtype={"id": str}, nrows=0 if header_only else None)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise SourceError(f"{path}: cannot read the labels CSV ({type(err).__name__}: {err})") from None
    if "id" not in df.columns:
        raise SourceError(
            f"{path}: a labels CSV needs an `id` column (the structure file's name without suffix): "
            f"{[str(c) for c in df.columns]}"
        )
    return df


def read_labels_csv(path: str | Path) -> tuple[pd.DataFrame, set[str]]:
    """A labels CSV with an `id` column (`labels_csv`), and its text columns (`column_is_text`), whose values are kept
    as text (stripped; None where empty). Missing values are None."""
    df = labels_csv(path)
    own = [c for c in df.columns if c in TABLE_COLUMNS and c != "id"]
    if own:  # the structure table's own columns (a formula computed from the structure) are not labels
        log.warning("%s: columns %s are the structure table's own, made from each structure: not read as labels", path, own)
        df = df.drop(columns=own)
    text = {col for col in df.columns if col != "id" and column_is_text(df[col])}
    for col in text:
        df[col] = df[col].map(lambda v: str(v).strip() if pd.notna(v) and str(v).strip() else None)
    return df.astype(object).where(df.notna(), None), text


# --------------------------------------------------------------------------- Matbench
def matbench_ids(task: str, n: int) -> list[str]:
    """Matbench's row ids: `mb-<short>-<1-based index>` zero-padded to the width of n."""
    short = task.removeprefix("matbench_").replace("_", "-")
    width = len(str(n))
    return [f"mb-{short}-{i + 1:0{width}d}" for i in range(n)]


def read_matbench(path: str | Path, task: str) -> Iterator[Crystal | Rejected]:
    """Matbench's pandas 'split' orient, or the column orient ({column: {row: value}})."""
    with gzip.open(path, "rt") if str(path).endswith(".gz") else open(path) as fh:
        raw = json.load(fh)
    if {"index", "columns", "data"} <= raw.keys():
        ids = [str(i) for i in raw["index"]]
        df = pd.DataFrame(raw["data"], columns=raw["columns"])
    elif "structure" in raw and isinstance(raw["structure"], dict):
        df = pd.DataFrame({col: pd.Series(vals) for col, vals in raw.items()})
        df = df.loc[sorted(df.index, key=int)]
        ids = matbench_ids(task, len(df)) if "id" not in df else [str(i) for i in df["id"]]
    else:
        raise SourceError(f"{path}: neither Matbench's split orient nor a column-oriented structure table")
    meta = MATBENCH_META
    label_cols = [c for c in df.columns if c not in (*MATBENCH_NOT_LABELS, *meta) and pd.api.types.is_numeric_dtype(df[c])]
    for id_, (_, row) in zip(ids, df.iterrows(), strict=True):
        c = crystal_from_pmg_dict(id_, row["structure"])
        if isinstance(c, Crystal):
            try:
                c.labels = {col: _label(row[col], col) for col in label_cols}
            except ValueError as err:
                yield Rejected(id_, f"invalid label: {err}")
                continue
            c.meta = {new: str(row[old]) for old, new in meta.items() if old in row and pd.notna(row[old])}
        yield c


MATBENCH_NOT_LABELS = ("structure", "id", "spg_num", "volume")
MATBENCH_META = {"crystal_sys": "crystal_system", "spg_symbol": "spacegroup"}  # a column-oriented file's metadata


def matbench_columns(path: str | Path) -> list[str]:
    """The columns of a Matbench file, read without parsing its structures where the file says them first (the
    split orient's `columns`, found in its first 16 MB); a column-oriented file is read whole."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt") as fh:
            head = fh.read(16 * 2**20)
        found = re.search(r'"columns"\s*:\s*(\[[^\]]*\])', head)
        if found:
            return [str(c) for c in json.loads(found.group(1))]
        with opener(path, "rt") as fh:
            raw = json.load(fh)
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as err:
        raise SourceError(f"{path}: cannot read the Matbench file ({type(err).__name__}: {err})") from None
    if isinstance(raw, dict) and {"index", "columns", "data"} <= raw.keys():
        return [str(c) for c in raw["columns"]]
    if not isinstance(raw, dict) or not isinstance(raw.get("structure"), dict):
        raise SourceError(f"{path}: neither Matbench's split orient nor a column-oriented structure table")
    return [str(c) for c in raw]


def download_url(url: str, dest: str | Path, what: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, atomic_path(dest) as tmp:
            tmp.write_bytes(resp.read())
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise SourceError(
            f"could not download {what} from {url} ({err}). Are you offline? Download it on a machine "
            f"with internet and set the dataset's `path` to the local file."
        ) from None


# --------------------------------------------------------------------------- files
CELL_KEYS = [f"_cell_{k}" for k in ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")]


def _cif_without_atoms(path: Path) -> bool:
    """Whether a file pymatgen could not make a structure of is a well-formed CIF with a whole cell and no atom
    sites (a structure without atoms); anything else (text, binary, a broken cell or atom loop) is unparseable."""
    from pymatgen.io.cif import CifFile

    try:
        blocks = CifFile.from_str(path.read_text(errors="strict")).data.values()
    except Exception:  # noqa: BLE001 (not text, or not a CIF)
        return False
    return any(all(k in b.data for k in CELL_KEYS) and not any(k.startswith("_atom_site_") for k in b.data) for b in blocks)


def read_structure_file(path: Path) -> Crystal | Rejected:
    from pymatgen.core import Structure

    id_ = path.stem if path.name not in STRUCTURE_NAMES else path.parent.name
    if path.stat().st_size == 0:
        return Rejected(id_, "empty file")
    try:
        s = Structure.from_file(path)
    except Exception as err:  # pymatgen raises many types for malformed files
        msg = str(err).splitlines()[0][:200] if str(err) else ""
        if "at least 1 site" in msg or (path.suffix.lower() == ".cif" and _cif_without_atoms(path)):
            return Rejected(id_, f"no atoms ({path.name})")
        return Rejected(id_, f"unparseable file ({path.name}: {type(err).__name__}: {msg})")
    if not s.is_ordered:
        return Rejected(id_, DISORDERED)
    return Crystal(id_, s.lattice.matrix.copy(), np.array(s.atomic_numbers, dtype=np.int64), s.frac_coords.copy())


def read_folder(path: str | Path, labels: str | Path | None, glob: str = "*") -> Iterator[Crystal | Rejected]:
    """A folder of CIF/POSCAR files named `<id>.cif`, labels from a CSV with an `id` column."""
    folder = Path(path)
    if not folder.is_dir():
        raise SourceError(f"{folder} is not a folder")
    files = sorted(
        p for p in folder.glob(glob) if p.is_file() and (p.suffix.lower() in STRUCTURE_SUFFIXES or p.name in STRUCTURE_NAMES)
    )
    if not files:
        raise SourceError(f"{folder} has no structure files (*.cif, *.vasp, POSCAR)")
    table: dict[str, dict[str, Any]] = {}
    repeated: set[str] = set()
    text: set[str] = set()
    if labels is not None:
        df, text = read_labels_csv(labels)
        repeated = set(df.loc[df["id"].duplicated(), "id"])
        table = {str(r["id"]): {k: v for k, v in r.items() if k != "id"} for r in df.to_dict("records")}
    seen = set()
    for f in files:
        c = read_structure_file(f)
        seen.add(c.id)
        if isinstance(c, Crystal) and c.id in repeated:  # which row is right is unknowable
            yield Rejected(c.id, "repeated id in the labels file")
            continue
        if isinstance(c, Crystal) and c.id in table:
            try:
                c.labels = {k: v if k in text else _label(v, k) for k, v in table[c.id].items()}
            except ValueError as err:
                yield Rejected(c.id, f"invalid label: {err}")
                continue
        yield c
    for id_ in table.keys() - seen:
        yield Rejected(id_, "label row without a structure file")


def extxyz_frames(path: str | Path) -> Iterator[str]:
    """The text of each frame, read in one pass. (ASE's `iread` indexes every frame first and then seeks
    back to each, which on a .gz file means decompressing from the start again: hours for the pool.)"""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        while first := fh.readline():
            if not first.strip():
                continue
            try:
                n = int(first)
            except ValueError:
                raise SourceError(f"{path}: expected an atom count, found {first[:80]!r}") from None
            yield first + "".join(fh.readline() for _ in range(n + 1))


def read_extxyz(path: str | Path) -> Iterator[Crystal | Rejected]:
    """Extended XYZ (ASE), one frame per structure; `id` and numeric labels in each frame's info."""
    from ase.io import read

    for k, frame in enumerate(extxyz_frames(path)):
        try:
            atoms = read(io.StringIO(frame), format="extxyz")
        except Exception as err:  # ASE raises several types for a broken frame
            yield Rejected(f"frame-{k}", f"unparseable frame ({type(err).__name__}: {str(err)[:200]})")
            continue
        id_ = str(atoms.info.get("id", f"frame-{k}"))
        if not all(atoms.pbc):
            yield Rejected(id_, "not periodic in all three directions")
            continue
        c = Crystal(
            id_, np.array(atoms.cell[:], dtype=float), atoms.numbers.astype(np.int64), atoms.get_scaled_positions(wrap=False)
        )
        try:
            c.labels = {
                key: _label(v, key) for key, v in atoms.info.items() if key != "id" and isinstance(v, int | float | np.number)
            }
        except ValueError as err:
            yield Rejected(id_, f"invalid label: {err}")
            continue
        yield c


# --------------------------------------------------------------------------- Materials Project
def download_mp(criteria: dict[str, Any], fields: list[str], chunk_size: int, dest: str | Path) -> None:
    """Summary search through mp-api, saved in chunks so that an interrupted download resumes.

    First the matching ids are listed (one cheap query); then each chunk of `chunk_size` ids is fetched
    with its structures and `fields` into `dest/parts/NNNNN.json.gz`. Parts already on disk are kept.
    """
    key = os.environ.get("MP_API_KEY")
    if not key:
        raise SourceError("the mp source needs an API key in the MP_API_KEY environment variable")
    from mp_api.client import MPRester

    dest = Path(dest)
    parts = dest / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    try:
        endpoint = os.environ.get("MP_API_ENDPOINT") or None  # another server, e.g. a mirror
        with MPRester(api_key=key, endpoint=endpoint, mute_progress_bars=True) as mpr:
            ids_file = dest / "ids.json"
            if ids_file.exists():
                ids = read_json(ids_file)
            else:
                docs = mpr.materials.summary.search(**criteria, fields=["material_id"])
                ids = sorted(str(d.material_id) for d in docs)
                write_json(ids, ids_file)
            n_chunks = math.ceil(len(ids) / chunk_size)
            for k in range(n_chunks):
                part = parts / f"{k:05d}.json.gz"
                if part.exists():
                    continue
                chunk = ids[k * chunk_size : (k + 1) * chunk_size]
                docs = mpr.materials.summary.search(material_ids=chunk, fields=["material_id", "structure", *fields])
                rows = [
                    {"id": str(d.material_id), "structure": d.structure.as_dict(), **{f: getattr(d, f, None) for f in fields}}
                    for d in docs
                ]
                with atomic_path(part) as tmp, gzip.open(tmp, "wt") as fh:
                    json.dump(rows, fh)
                log.info("mp download: chunk %d/%d (%d structures)", k + 1, n_chunks, len(rows))
    except SourceError:
        raise
    except Exception as err:
        msg = str(err).replace(key, "***")
        raise SourceError(f"Materials Project download failed: {type(err).__name__}: {msg}") from None


def read_mp_download(dest: str | Path, fields: list[str]) -> Iterator[Crystal | Rejected]:
    for part in sorted((Path(dest) / "parts").glob("*.json.gz")):
        with gzip.open(part, "rt") as fh:
            for row in json.load(fh):
                c = crystal_from_pmg_dict(row["id"], row["structure"])
                if isinstance(c, Crystal):
                    try:
                        c.labels = {f: _label(row.get(f), f) for f in fields}
                    except (ValueError, TypeError) as err:
                        yield Rejected(c.id, f"invalid label: {err}")
                        continue
                yield c
