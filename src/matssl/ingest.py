"""The `download` and `ingest` stages: any source to the canonical structure table.

Every input row ends in exactly one of `structures.parquet` or `rejected.parquet` (id, reason).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from matssl.config import FilesSource, IngestConfig, MatbenchSource, MPSource
from matssl.sources import (
    MATBENCH_URL,
    Rejected,
    SourceError,
    download_mp,
    download_url,
    read_extxyz,
    read_folder,
    read_matbench,
    read_mp_download,
)
from matssl.table import Crystal, check_crystal, rejections_table, to_arrow, write_table

log = logging.getLogger(__name__)


def parse_source(d: dict[str, Any]) -> MatbenchSource | FilesSource | MPSource:
    """A dataset's source, checked again where the job runs (its files may have changed since the plan)."""
    try:
        return {"matbench": MatbenchSource, "files": FilesSource, "mp": MPSource}[d["kind"]].model_validate(d)
    except ValidationError as err:
        raise SourceError("; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())) from None


def run_download(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    src = parse_source(spec["params"]["source"])
    if isinstance(src, MPSource):
        download_mp(src.criteria, src.fields, src.chunk_size, out)
    else:
        url = src.url or MATBENCH_URL.format(task=src.task)
        download_url(url, out / f"{src.task}.json.gz", f"Matbench task {src.task}")
    return {}


def read_source(spec: dict[str, Any]):
    src = parse_source(spec["params"]["source"])
    if isinstance(src, MPSource):
        return read_mp_download(spec["upstream"]["download"], src.fields)
    if isinstance(src, MatbenchSource):
        path = src.path or str(Path(spec["upstream"]["download"]) / f"{src.task}.json.gz")
        return read_matbench(path, src.task)
    path = Path(src.path)  # (a folder with structure files, or an extended-XYZ file: FilesSource checked it)
    return read_folder(path, src.labels, src.glob) if path.is_dir() else read_extxyz(path)


def run_ingest(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    cfg = IngestConfig.model_validate(spec["params"]["ingest"])
    name = spec["params"]["dataset"]
    good: list[Crystal] = []
    rejected: list[tuple[str, str]] = []
    seen: set[str] = set()
    for n, item in enumerate(read_source(spec), start=1):
        if item.id in seen:
            rejected.append((item.id, "duplicate id"))
            continue
        seen.add(item.id)
        if isinstance(item, Rejected):
            rejected.append((item.id, item.reason))
            continue
        reason = check_crystal(item, cfg.max_atoms, cfg.max_z, cfg.min_distance)
        if reason:
            rejected.append((item.id, reason))
        else:
            good.append(item)
        if n % 2000 == 0:
            log.info("ingest %s: %d read, %d rejected", name, n, len(rejected))
    if not good:
        for id_, reason in rejected[:200]:  # (the job's log stays; a failed job's outputs are removed)
            log.error("rejected %s: %s", id_, reason)
        reasons = Counter(reason.split(" (")[0] for _, reason in rejected).most_common(5)
        raise SourceError(
            f"dataset {name}: no usable structure ({len(rejected)} rejected: "
            f"{'; '.join(f'{n} x {r}' for r, n in reasons)}; each row's reason in the job's log)"
        )
    write_table(rejections_table(rejected), out / "rejected.parquet")
    labels = sorted({k for c in good for k in c.labels})
    write_table(to_arrow(good, labels, source=name), out / "structures.parquet")
    log.info("ingest %s: %d structures, %d rejected, labels %s", name, len(good), len(rejected), labels)
    return {"n_structures": len(good), "n_rejected": len(rejected), "labels": labels}
