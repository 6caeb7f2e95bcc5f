"""``kgrec serve`` for real: gunicorn workers on a loopback port answering HTTP."""

from __future__ import annotations

import json
from urllib.request import Request, urlopen

import pytest
from click.testing import CliRunner

from kgrec.cli import main
from tests.api_fixtures import API_KEY, fill_store, train_bundle
from tests.serve_fixtures import serving


@pytest.mark.parametrize("dev", [False, True], ids=["gunicorn", "dev"])
def test_serve_answers_http(snapshot, synthetic, tmp_path, dev):
    bundle = train_bundle(snapshot, tmp_path / "bundle")
    store = fill_store(synthetic.records, tmp_path / "store")
    with serving(bundle, store, tmp_path, *(["--dev"] if dev else []), env={"KGREC_API_KEY": API_KEY}) as (port, _):
        base = f"http://127.0.0.1:{port}/v1"
        with urlopen(f"{base}/health") as resp:
            assert json.loads(resp.read())["bundle"]["fingerprint"] == snapshot.fingerprint
        user = snapshot.users.ids[0]
        with urlopen(f"{base}/users/{user}/recommendations?k=3") as resp:
            assert len(json.loads(resp.read())["recommendations"]) == 3
        req = Request(f"{base}/users", data=json.dumps({"id": "via-http"}).encode(), method="POST",
                      headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
        with urlopen(req) as resp:
            assert resp.status == 201


def test_serve_refuses_a_bad_bundle(tmp_path):
    empty = tmp_path / "not-a-bundle"
    empty.mkdir()
    result = CliRunner().invoke(main, ["serve", "--bundle", str(empty), "--store", f"memory://{tmp_path}/s"])
    assert result.exit_code == 1
    assert "KGREC_BUNDLE" in result.output and "manifest.json" in result.output
