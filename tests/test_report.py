"""The report as a person sees it: rendered by headless Chromium (Debian's `chromium`)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from matssl.fingerprints import LABELS

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        if os.environ.get("MATSSL_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required here (MATSSL_REQUIRE_CHROMIUM is set) but not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def render(chromium: str, page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_report_renders_with_tables_and_plots(chromium, workflow_run, tmp_path):
    workdir, cfg = workflow_run
    page = workdir / "results" / "report.html"
    dom = render(chromium, page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'id="families-table"' in html and 'id="family-1"' in html and 'id="provenance-table"' in html
    assert html.count('class="mae-table"') == len(cfg["properties"])
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)
    # per property a label-efficiency plot, a parity plot and the embedding map, plus the pretraining loss curves
    assert len(images) == 3 * len(cfg["properties"]) + 1, images
    assert sum("embedding map" in i for i in images) == len(cfg["properties"])
    assert html.count('class="probe-table"') == len(cfg["properties"])
    probes = html.split('class="probe-table"', 1)[1].split("</table>", 1)[0]
    for name in [
        *(f"{label} (mean)" for label in LABELS.values()),
        "Magpie-style",
        "sine Coulomb",
        "negnn (layer sum)",
        "kernel ridge",
    ]:
        assert name in probes, name
    for method in cfg["pretrain"]["methods"]:
        assert f">{method}<" in html
    assert "Uncaught" not in dom.stderr and "SyntaxError" not in dom.stderr
    shot = workdir / "report.png"
    out = render(chromium, page, tmp_path, "--window-size=1200,2400", f"--screenshot={shot}")
    assert out.returncode == 0 and shot.stat().st_size > 20_000
    keep = os.environ.get("MATSSL_SCREENSHOT_DIR")
    if keep:  # CI or a developer keeps the screenshot to look at
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
