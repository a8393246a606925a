"""Every row of the bad-input corpus is accounted for: kept, or rejected with a clear reason; the
report of a run that ingests it counts the rejections per reason."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from matssl.features import run_graphs
from matssl.ingest import run_ingest
from matssl.table import read_table

from .bad_inputs import EXPECTED, N_GOOD, UNLABELLED, write_corpus


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    labels = write_corpus(tmp / "files")
    source = {"kind": "files", "path": str(tmp / "files"), "labels": str(labels), "glob": "*"}
    run_ingest({"params": {"dataset": "corpus", "source": source, "ingest": {}}}, tmp / "ingest")
    run_graphs(
        {"params": {"graphs": {"cutoff": 6.0, "max_neighbors": 8}}, "upstream": {"structures": str(tmp / "ingest")}},
        tmp / "graphs",
    )
    return tmp


def test_every_input_row_is_kept_or_rejected_with_its_reason(ingested):
    kept = read_table(ingested / "ingest" / "structures.parquet")
    rejected = pd.concat(
        [read_table(ingested / stage / "rejected.parquet").assign(stage=stage) for stage in ("ingest", "graphs")]
    )
    files = {p.name.rsplit(".", 1)[0] for p in (ingested / "files").iterdir() if p.name != "labels.csv"}
    label_ids = set(pd.read_csv(ingested / "files" / "labels.csv")["id"])
    assert set(kept["id"]) | set(rejected["id"]) == files | label_ids  # nothing vanished
    for id_, (stage, reason) in EXPECTED.items():
        rows = rejected[rejected["id"] == id_]
        assert len(rows) == 1, (id_, rows)
        assert rows["stage"].iloc[0] == stage and rows["reason"].iloc[0].startswith(reason), (id_, rows["reason"].iloc[0])
    # the first file of a repeated id is kept, the second rejected
    assert (kept["id"] == "twice").sum() == 1
    for id_ in set(kept["id"]) - {"twice"}:
        assert id_ not in set(rejected[rejected["stage"] == "ingest"]["id"])


def test_every_valid_row_survives_with_its_label(ingested):
    kept = read_table(ingested / "ingest" / "structures.parquet").set_index("id")
    good = [f"good-{k:02d}" for k in range(N_GOOD)]
    assert set(good) <= set(kept.index) and kept.loc[good, "n"].notna().all()
    assert kept.loc[UNLABELLED, "n"].isna().all()  # kept for pretraining; no label for finetuning
    notes = kept["note"].dropna()  # the text column: kept as text, rejecting nothing
    assert notes.map(type).eq(str).all() and set(notes) == {"checked by hand"} and kept["note"].isna().any()
    graphs = read_table(ingested / "graphs" / "rejected.parquet")
    assert graphs["id"].tolist() == ["isolated"]


def test_report_counts_rejections_per_reason(workflow_run):
    workdir, cfg = workflow_run
    html = (workdir / "results" / "report.html").read_text()
    table = html.split('id="rejections-table"', 1)[1].split("</table>", 1)[0]
    counts = {m[0]: int(m[1]) for m in re.findall(r'<td class="l">([^<]+)</td><td>(\d+)</td>', table)}
    expected: dict[str, int] = {}
    for _, reason in EXPECTED.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert counts == expected
    assert "without a usable label" in html
