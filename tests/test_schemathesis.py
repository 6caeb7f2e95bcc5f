"""Property-based robustness: schemathesis generates requests from the OpenAPI document the
app serves and runs them against the real WSGI app; no 5xx, and every response must match
the schema (status code, content type, body)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.openapi import build_spec
from api.settings import Settings
from tests.api_fixtures import API_KEY, fill_store, fresh_server, train_bundle

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# The document is plain data, so it loads at collection time; the app it is run against is
# a fixture (test_served_document_is_this_one checks that the app serves exactly this).
schema = schemathesis.openapi.from_dict(build_spec())


@pytest.fixture(scope="module")
def app(snapshot, synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    bundle = train_bundle(snapshot, root / "bundle")
    store = fill_store(synthetic.records, root / "store")
    return create_app(Settings(bundle=str(bundle), store=store, api_key=API_KEY, max_body=65_536),
                      server=fresh_server(bundle))


def test_served_document_is_this_one(app):
    assert app.test_client().get("/v1/openapi.json").get_json() == build_spec()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_openapi(app, case):
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {API_KEY}"}, checks=CHECKS)
