import gzip
import json
import threading
import urllib.error
from http.server import HTTPServer

import numpy as np
import pytest
from ase import Atoms
from ase.io import write as ase_write
from pymatgen.core import Lattice, Structure

from matssl import sources
from matssl.sources import Rejected, SourceError, matbench_ids, read_extxyz, read_folder, read_matbench
from matssl.table import Crystal

from .conftest import demo_slice


def test_matbench_ids_match_matbench_naming():
    assert matbench_ids("matbench_dielectric", 4764)[:2] == ["mb-dielectric-0001", "mb-dielectric-0002"]
    assert matbench_ids("matbench_jdft2d", 636)[-1] == "mb-jdft2d-636"
    assert matbench_ids("matbench_log_kvrh", 10987)[0] == "mb-log-kvrh-00001"


def test_column_and_split_orient_give_the_same_crystals(tmp_path):
    col = demo_slice(5)
    split = {
        "index": matbench_ids("matbench_dielectric", 5),
        "columns": ["structure", "n"],
        "data": [[col["structure"][str(i)], col["n"][str(i)]] for i in range(5)],
    }
    for name, obj in (("col.json.gz", col), ("split.json.gz", split)):
        with gzip.open(tmp_path / name, "wt") as fh:
            json.dump(obj, fh)
    a = list(read_matbench(tmp_path / "col.json.gz", "matbench_dielectric"))
    b = list(read_matbench(tmp_path / "split.json.gz", "matbench_dielectric"))
    assert [c.id for c in a] == [c.id for c in b] == matbench_ids("matbench_dielectric", 5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.frac, y.frac)
        assert x.labels == y.labels
    assert a[0].meta["crystal_system"] == "hexagonal" and a[0].labels["n"] == pytest.approx(1.7520636404)
    ref = Structure.from_dict(col["structure"]["0"])
    np.testing.assert_allclose(a[0].lattice, ref.lattice.matrix)
    assert a[0].numbers.tolist() == list(ref.atomic_numbers)


def test_disordered_site_is_rejected():
    s = Structure(Lattice.cubic(4), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    r = sources.crystal_from_pmg_dict("x", s.as_dict())
    assert isinstance(r, Rejected) and "disordered" in r.reason


def test_folder_of_cifs_with_labels(tmp_path, nacl, silicon):
    for c in (nacl, silicon):
        Structure(c.lattice, c.numbers, c.frac).to(filename=str(tmp_path / f"{c.id}.cif"))
    (tmp_path / "labels.csv").write_text("id,K_VRH\nnacl,25.0\nsi,98.0\nghost,1.0\n")
    out = {c.id: c for c in read_folder(tmp_path, tmp_path / "labels.csv")}
    assert out["nacl"].labels == {"K_VRH": 25.0} and len(out["nacl"].numbers) == len(nacl.numbers)
    assert isinstance(out["ghost"], Rejected) and "without a structure" in out["ghost"].reason


def test_extxyz_labels_from_info(tmp_path):
    frames = []
    for k, a in enumerate((4.0, 5.0)):
        atoms = Atoms("NaCl", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=np.eye(3) * a, pbc=True)
        atoms.info.update({"id": f"mp-{k}", "band_gap": 1.5 * k})
        frames.append(atoms)
    ase_write(tmp_path / "pool.extxyz", frames, format="extxyz")
    out = list(read_extxyz(tmp_path / "pool.extxyz"))
    assert [c.id for c in out] == ["mp-0", "mp-1"]
    assert out[1].labels == {"band_gap": 1.5}
    np.testing.assert_allclose(out[1].lattice, np.eye(3) * 5.0)
    # gzipped, with a broken frame in the middle: that frame is rejected, the others are read
    text = (tmp_path / "pool.extxyz").read_text().splitlines(keepends=True)
    broken = (
        text[:4]
        + [
            "2\n",
            'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 id=bad pbc="T T T"\n',
            "Na 0 0 0\n",
            "Cl half 0.5 0.5\n",
        ]
        + text[4:]
    )
    with gzip.open(tmp_path / "pool.extxyz.gz", "wt") as fh:
        fh.write("".join(broken))
    out = list(read_extxyz(tmp_path / "pool.extxyz.gz"))
    assert [c.id for c in out] == ["mp-0", "frame-1", "mp-1"]
    assert isinstance(out[1], Rejected) and out[1].reason.startswith("unparseable frame")


def test_offline_download_gives_a_clear_error(monkeypatch, tmp_path):
    def offline(*a, **k):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(sources.urllib.request, "urlopen", offline)
    with pytest.raises(SourceError, match="offline"):
        sources.download_url("https://example.invalid/x.json.gz", tmp_path / "x.json.gz", "Matbench task x")
    assert not (tmp_path / "x.json.gz").exists()


def test_mp_download_in_resumable_chunks(fake_mp, tmp_path):
    fake_mp.fail_after = 2  # the id listing and one chunk succeed, then the "network" breaks
    with pytest.raises(SourceError, match="503"):
        sources.download_mp({"band_gap": (0, 10)}, ["band_gap"], 2, tmp_path)
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["00000.json.gz"]
    fake_mp.fail_after = None
    n_before = len(fake_mp.requests)
    sources.download_mp({"band_gap": (0, 10)}, ["band_gap"], 2, tmp_path)
    summary = [r for r in fake_mp.requests[n_before:] if "summary" in r[0]]
    assert [r[1]["material_ids"][0] for r in summary] == ["mp-2,mp-3", "mp-4"]  # only what was missing
    assert all(r[2].get("x-api-key") == "k" * 32 for r in summary)
    out = list(sources.read_mp_download(tmp_path, ["band_gap"]))
    assert [c.id for c in out] == [f"mp-{i}" for i in range(5)]
    assert all(isinstance(c, Crystal) for c in out) and out[3].labels == {"band_gap": 3.0}


def test_mp_needs_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(SourceError, match="MP_API_KEY"):
        sources.download_mp({}, [], 10, tmp_path)


def test_matbench_download_then_ingest(tmp_path, tiny_demo):
    """A Matbench source without `path` is downloaded (here from a local server) and then ingested."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler

    from matssl.ingest import run_download, run_ingest
    from matssl.table import read_table

    served = tmp_path / "www"
    served.mkdir()
    (served / "tiny.json.gz").write_bytes(tiny_demo.read_bytes())
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = {
            "kind": "matbench",
            "task": "matbench_dielectric",
            "path": None,
            "url": f"http://127.0.0.1:{server.server_port}/tiny.json.gz",
        }
        download = tmp_path / "download"
        run_download({"params": {"source": source}}, download)
    finally:
        server.shutdown()
    spec = {"params": {"dataset": "tiny", "source": source, "ingest": {}}, "upstream": {"download": str(download)}}
    info = run_ingest(spec, tmp_path / "ingest")
    assert info["n_structures"] + info["n_rejected"] == 48
    table = read_table(tmp_path / "ingest" / "structures.parquet")
    assert table["id"].iloc[0] == "mb-dielectric-01" and table["n"].notna().all()


def test_text_columns_of_a_labels_csv_are_kept_as_text_and_can_be_classes(tmp_path, nacl, silicon, triclinic):
    """A text column (formula, class name) rejects no row: it is stored as text, and a classification of it works;
    a value that is not a number in a numeric column is that row's invalid label."""
    from matssl.evaluate import run_splits
    from matssl.ingest import run_ingest
    from matssl.table import read_table

    rng = np.random.default_rng(0)
    rows = []
    for k in range(12):
        c = [nacl, silicon, triclinic][k % 3]
        frac = (c.frac + rng.normal(0, 0.01, c.frac.shape)) % 1.0
        Structure(c.lattice, c.numbers, frac).to(filename=str(tmp_path / f"s{k:02d}.cif"))
        rows.append(
            f"s{k:02d},{'not measured' if k == 5 else 1.0 + k},{['rocksalt', 'diamond', 'other'][k % 3]},{c.formula},by hand"
        )
    (tmp_path / "labels.csv").write_text("id,gap,phase,formula,note\n" + "\n".join(rows) + "\n")
    source = {"kind": "files", "path": str(tmp_path), "labels": str(tmp_path / "labels.csv")}
    run_ingest({"params": {"dataset": "mine", "source": source, "ingest": {}}}, tmp_path / "ingest")
    kept = read_table(tmp_path / "ingest" / "structures.parquet").set_index("id")
    rejected = read_table(tmp_path / "ingest" / "rejected.parquet")
    assert rejected.values.tolist() == [["s05", "invalid label: column 'gap': 'not measured' is not a number"]]
    assert len(kept) == 11 and kept["phase"].tolist()[:3] == ["rocksalt", "diamond", "other"]
    assert kept["gap"].dtype == float and kept["note"].eq("by hand").all()
    assert kept.loc["s00", "formula"] == nacl.formula  # (the table's own column: not read from the CSV)

    def splits(**prop):
        spec = {
            "params": {"property": {"dataset": "mine", **prop, "n_folds": 2}},
            "upstream": {"structures": str(tmp_path / "ingest")},
        }
        return run_splits(spec, tmp_path / "splits")

    assert splits(column="phase", kind="classification")["classes"] == ["diamond", "other", "rocksalt"]
    with pytest.raises(ValueError, match="label column 'note' holds text .*: a regression needs numbers"):
        splits(column="note")
    # the job's command says it as one message (an input error: no traceback)
    from matssl.cli import main

    spec = {
        "kind": "splits",
        "key": "p-x",
        "params": {"property": {"dataset": "mine", "column": "note"}},
        "upstream": {"structures": str(tmp_path / "ingest")},
    }
    with pytest.raises(SystemExit) as err:
        main(["stage", "splits", "--spec", json.dumps(spec), "--out", str(tmp_path / "job")])
    assert str(err.value.code).startswith("dataset 'mine': label column 'note' holds text")
