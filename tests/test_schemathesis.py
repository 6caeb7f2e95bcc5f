"""Property-based robustness: schemathesis generates requests from the OpenAPI document the
app serves — valid ones and, as often, invalid ones — and runs them against the real WSGI app
with a real MemoryStore. No answer is a 5xx, every answer matches the document (status,
content type, body), and the store holds exactly what was acknowledged (``StoreOracle``):
nothing changes on a refusal, and a 201 wrote its rows and nothing else. 50 examples per
operation here; ``benchmarks/fuzz.py`` runs 500 or more."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from kgrec.api.app import create_app
from kgrec.api.openapi import build_spec
from kgrec.api.settings import Settings
from tests.api_fixtures import ANALYST_KEY, API_KEY, fill_store, fresh_server, train_bundle
from tests.fuzz_oracle import NEGATIVE_CHECKS, POSITIVE_CHECKS, StoreOracle, sent_body, with_known_ids

EXAMPLES = 50

# The document is plain data, so it loads at collection time; the app it is run against is
# a fixture (test_served_document_is_this_one checks that the app serves exactly this).
schema = schemathesis.openapi.from_dict(build_spec())
OPERATIONS = [op.ok() for op in schema.get_all_operations()]


@pytest.fixture(scope="module")
def served(snapshot, synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    bundle = train_bundle(snapshot, root / "bundle")
    store = fill_store(synthetic.records, root / "store")
    # Impressions off: the oracle holds the store to what requests acknowledged, and a served list's
    # impressions are written afterwards by design (tests/test_impression_api.py covers them).
    app = create_app(Settings(bundle=str(bundle), store=store, api_key=API_KEY, analyst_key=ANALYST_KEY,
                              max_body=65_536, impressions=False), server=fresh_server(bundle))
    return app, StoreOracle(root / "store", root / "shadow")


def test_served_document_is_this_one(served):
    app, _ = served
    assert app.test_client().get("/v1/openapi.json").get_json() == build_spec()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_api_conforms_and_stores_only_what_it_acknowledged(served, snapshot, operation):
    app, oracle = served
    key = ANALYST_KEY if operation.path == "/cypher" else API_KEY
    users, items = list(snapshot.users.ids), list(snapshot.items.ids)
    positive = st.builds(with_known_ids, operation.as_strategy(GenerationMode.POSITIVE), st.just(users), st.just(items),
                         st.integers(0, 1000))
    modes = st.one_of(st.tuples(positive, st.just(POSITIVE_CHECKS)),
                      st.tuples(operation.as_strategy(GenerationMode.NEGATIVE), st.just(NEGATIVE_CHECKS)))

    @given(modes)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def run(drawn):
        case, checks = drawn
        oracle.before()
        response = case.call_and_validate(app=app, headers={"Authorization": f"Bearer {key}"}, checks=checks)
        problem = oracle.after(case.method.upper(), "/v1" + case.formatted_path, sent_body(response),
                               response.status_code)
        assert problem is None, problem

    run()
