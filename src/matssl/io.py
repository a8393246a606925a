"""Small file helpers: atomic writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """What the user gave (a config, a dataset, a label column, a device) cannot be used: the command line says the
    message, without a traceback."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds.

    A job killed mid-write leaves a `.tmp-*` file, never a complete-looking output. For the interruption
    tests, `MATSSL_KILL_AT=<file name>` makes the process SIGKILL itself once that file's temporary copy
    is written, just before it would be renamed into place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{socket.gethostname()}-{os.getpid()}-{path.name}")  # unique across cluster nodes too
    try:
        yield tmp
        if os.environ.get("MATSSL_KILL_AT") == path.name:
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


RACY_S = 2.0


def hash_cache_dir() -> Path:
    """Where file digests are cached (`MATSSL_CACHE`, default ~/.cache/matssl)."""
    return Path(os.environ.get("MATSSL_CACHE", Path.home() / ".cache" / "matssl")) / "hashes"


def sha256_tree(path: str | Path, pattern: str = "*") -> str:
    """Hash of a file, or of every file under a folder (relative names and contents).

    Every workflow run and every cluster job re-plans the workflow, which hashes the input files outside the
    results folder: a file's digest is cached by (size, modification and change times, inode), as git's index
    does, in one JSON file per input under `hash_cache_dir()`, so that a 100,000-file folder costs its stat()
    calls, not reading every byte. A file modified within the last RACY_S seconds is not cached (a change in the
    same timestamp tick would not show). The cache is an optimisation only: unreadable or stale, it is rebuilt."""
    path = Path(path)
    cache_file = hash_cache_dir() / (hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24] + ".json")
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob(pattern) if p.is_file())
    fresh, now = {}, time.time_ns()
    for f in files:
        st = f.stat()
        rel = "" if f == path else str(f.relative_to(path))
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = cache.get(rel)
        fresh[rel] = [key, hit[1] if isinstance(hit, list) and hit[0] == key else sha256_file(f)]
    keep = {rel: v for rel, v in fresh.items() if now - max(v[0][1], v[0][2]) > RACY_S * 1e9}
    if keep != cache:
        with contextlib.suppress(OSError), atomic_path(cache_file) as tmp:  # a read-only home: no cache, same digests
            tmp.write_text(json.dumps(keep))
    if path.is_file():
        return fresh[""][1]
    h = hashlib.sha256()
    for rel, (_, digest) in fresh.items():  # sorted by path, as before the cache
        h.update(rel.encode())
        h.update(digest.encode())
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def spec_digest(spec: dict[str, Any]) -> str:
    """A short hash of a property's, the report's or a predictions file's spec: recorded in the file it makes."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]
