"""A stand-in for the Materials Project API on localhost (the real `MPRester` talks to it)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from pymatgen.core import Lattice, Structure


class FakeMP(BaseHTTPRequestHandler):
    """Answers the Materials Project API as mp-api asks it: /heartbeat and /materials/summary/."""

    structures: dict[str, Structure] = {}  # what the server holds: set by the fixture, tests may replace it
    requests: list = []
    fail_after: int | None = None

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        FakeMP.requests.append((url.path, q, {k.lower(): v for k, v in self.headers.items()}))
        if url.path.endswith("heartbeat"):
            self._send(200, {"db_version": "2025.09.25", "version": "0.90.0", "access_controlled_batch_ids": []})
            return
        if FakeMP.fail_after is not None and len([r for r in FakeMP.requests if "summary" in r[0]]) > FakeMP.fail_after:
            self._send(503, {"detail": "service unavailable"})
            return
        fields = q["_fields"][0].split(",")
        ids = q["material_ids"][0].split(",") if "material_ids" in q else sorted(self.structures)
        docs = []
        for i in ids:
            doc = {"material_id": i, "structure": self.structures[i].as_dict(), "band_gap": float(i[3:])}
            docs.append({k: v for k, v in doc.items() if k in fields})
        self._send(200, {"data": docs, "meta": {"total_doc": len(docs)}})

    def _send(self, code, body):
        b = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_mp(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), FakeMP)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeMP.requests, FakeMP.fail_after = [], None
    FakeMP.structures = {
        f"mp-{i}": Structure(Lattice.cubic(4.0 + 0.1 * i), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]) for i in range(5)
    }
    monkeypatch.setenv("MP_API_ENDPOINT", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setenv("MP_API_KEY", "k" * 32)
    yield FakeMP
    server.shutdown()
