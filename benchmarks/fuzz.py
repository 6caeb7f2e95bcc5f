"""Fuzz the HTTP API from its OpenAPI document, and replay the bad-input corpus.

For every operation, schemathesis draws ``--examples`` requests (valid and invalid ones in
equal measure) and sends them to the real app over a real MemoryStore, as the suite does
with 50 (``tests/test_schemathesis.py``); here nothing stops at the first failure, every
answer is counted. Then every case of ``tests/bad_input_corpus.py`` is sent once. Checked for
each request: no 5xx; valid requests answer as the document says (status, content type,
body); the store holds exactly what was acknowledged (``tests/fuzz_oracle.StoreOracle``).
Last, the corpus's raw byte streams (malformed chunked bodies, bad request lines, oversized
heads: ``RAW_CASES``) go to a real ``kgrec serve`` over sockets: each must be its JSON 4xx on a
closed connection, changing nothing.
The table goes under ``<!-- section:fuzz -->`` in RESULTS.md.

    PYTHONPATH=. python benchmarks/fuzz.py --examples 500
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:  # hypothesis's cache: a temporary folder, removed at exit
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = tempfile.mkdtemp(prefix="kgrec-fuzz-hypothesis-")
    atexit.register(shutil.rmtree, os.environ["HYPOTHESIS_STORAGE_DIRECTORY"], True)

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from benchmarks.sections import write_section  # noqa: E402
from kgrec.api.app import create_app  # noqa: E402
from kgrec.api.openapi import build_spec  # noqa: E402
from kgrec.api.settings import Settings  # noqa: E402
from kgrec.graph.snapshot import build_snapshot  # noqa: E402
from kgrec.loaders.synthetic import generate  # noqa: E402
from tests.api_fixtures import ANALYST_KEY, API_KEY, fill_store, fresh_server, train_bundle  # noqa: E402
from tests.bad_input_corpus import ANALYST, RAW_CASES, WRITER, cases  # noqa: E402
from tests.fuzz_oracle import NEGATIVE_CHECKS, POSITIVE_CHECKS, StoreOracle, digest, sent_body, with_known_ids  # noqa: E402
from tests.serve_fixtures import raw_request, serving  # noqa: E402

KEYS = {WRITER: API_KEY, ANALYST: ANALYST_KEY}


def fuzz_operation(app, oracle: StoreOracle, operation, users: list[str], items: list[str], examples: int,
                   seed_value: int) -> Counter:
    """Send ``examples`` drawn requests; count statuses, 5xx, document violations, store violations."""
    key = ANALYST_KEY if operation.path == "/cypher" else API_KEY
    positive = st.builds(with_known_ids, operation.as_strategy(GenerationMode.POSITIVE), st.just(users), st.just(items),
                         st.integers(0, 1000))
    drawn = st.one_of(st.tuples(positive, st.just(POSITIVE_CHECKS)),
                      st.tuples(operation.as_strategy(GenerationMode.NEGATIVE), st.just(NEGATIVE_CHECKS)))
    counts: Counter = Counter()

    @seed(seed_value)
    @given(drawn)
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              phases=[Phase.generate])
    def run(pair):
        case, checks = pair
        oracle.before()
        response = case.call(app=app, headers={"Authorization": f"Bearer {key}"})
        counts["requests"] += 1
        counts[f"{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=checks)
        except Exception as exc:  # count it and go on: the table reports every failure
            counts["document"] += 1
            print(f"  {operation.label}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        problem = oracle.after(case.method.upper(), "/v1" + case.formatted_path, sent_body(response),
                               response.status_code)
        if problem is not None:
            counts["store"] += 1
            print(f"  {problem}", file=sys.stderr)

    run()
    return counts


def replay_corpus(app, store_dir: Path) -> Counter:
    client = app.test_client()
    counts: Counter = Counter()
    for case in cases():
        before = digest(store_dir)
        headers = dict(case.headers)
        if case.auth in KEYS:
            headers["Authorization"] = f"Bearer {KEYS[case.auth]}"
        resp = client.open(case.path, method=case.method, data=case.body, headers=headers,
                           content_type="application/json")
        counts["cases"] += 1
        counts["5xx"] += resp.status_code >= 500
        body = resp.get_json(silent=True) or {}
        field_ok = case.field is None or body.get("error", {}).get("field") == case.field
        counts["wrong"] += resp.status_code != case.status or not field_ok
        counts["store"] += digest(store_dir) != before
    return counts


def replay_raw(bundle: Path, store_dir: Path, root: Path) -> Counter:
    """``RAW_CASES`` against a real ``kgrec serve`` (2 workers): status, JSON, closed, store unchanged."""
    counts: Counter = Counter()
    env = {"KGREC_API_KEY": API_KEY, "KGREC_MAX_BODY": "65536", "KGREC_BODY_TIMEOUT": "3"}
    with serving(bundle, f"memory://{store_dir}", root, env=env) as (port, _):
        for case in RAW_CASES:
            before = digest(store_dir)
            answer = raw_request(port, case.payload.replace(b"{WRITER_KEY}", API_KEY.encode()))
            counts["cases"] += 1
            counts["5xx"] += answer.status >= 500
            counts["wrong"] += answer.status != case.status
            counts["not_json"] += answer.headers.get("content-type") != "application/json"
            counts["left_open"] += not answer.closed
            counts["store"] += digest(store_dir) != before
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="requests drawn per operation")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    started, load_before = time.time(), os.getloadavg()[0]
    graph = generate(users=args.users, items=args.items, seed=args.seed)
    snap = build_snapshot(graph.records)
    with tempfile.TemporaryDirectory(prefix="kgrec-fuzz-") as tmp:
        root = Path(tmp)
        bundle = train_bundle(snap, root / "bundle")
        store = fill_store(graph.records, root / "store")
        app = create_app(Settings(bundle=str(bundle), store=store, api_key=API_KEY, analyst_key=ANALYST_KEY,
                                  max_body=65_536, impressions=False),  # the oracle checks acknowledged writes
                         server=fresh_server(bundle))
        oracle = StoreOracle(root / "store", root / "shadow")
        rows, total = [], Counter()
        for n, op in enumerate(schemathesis.openapi.from_dict(build_spec()).get_all_operations()):
            operation = op.ok()
            counts = fuzz_operation(app, oracle, operation, list(snap.users.ids), list(snap.items.ids), args.examples,
                                    args.seed + n)
            total.update(counts)
            rows.append(f"| `{operation.label}` | {counts['requests']} | {counts['2xx']} | {counts['4xx']} | "
                        f"{counts['5xx']} | {counts['document']} | {counts['store']} |")
            print(rows[-1], file=sys.stderr)
        corpus = replay_corpus(app, root / "store")
        raw = replay_raw(bundle, root / "store", root)
    minutes = (time.time() - started) / 60
    text = "\n".join([
        f"`python benchmarks/fuzz.py --examples {args.examples}` on a synthetic graph of {args.users} users and "
        f"{args.items} items, MemoryStore, Flask's test client; Python {platform.python_version()}, "
        f"{minutes:.1f} min, load average {load_before:.1f} → {os.getloadavg()[0]:.1f} (a shared 2-core machine).",
        "",
        "Each operation: as many invalid (negative) as valid (positive) requests drawn by schemathesis from the "
        "OpenAPI document; *document* counts valid requests answered otherwise than documented (and any request "
        "answered with the wrong content type); *store* counts requests after which the store did not hold exactly "
        "what was acknowledged (a refusal that changed a file, or a 201 after which the store is not exactly "
        "what it was plus the acknowledged rows).",
        "",
        "| operation | requests | 2xx | 4xx | 5xx | document | store |",
        "|---|---|---|---|---|---|---|",
        *rows,
        f"| **all** | {total['requests']} | {total['2xx']} | {total['4xx']} | {total['5xx']} | {total['document']} | "
        f"{total['store']} |",
        "",
        f"Bad-input corpus (`tests/bad_input_corpus.py`): {corpus['cases']} cases, {corpus['5xx']} answered 5xx, "
        f"{corpus['wrong']} answered another status or field than expected, {corpus['store']} changed the store.",
        "",
        f"Raw byte streams (`RAW_CASES`: malformed chunked bodies, bad request lines, oversized heads) against a "
        f"real `kgrec serve`: {raw['cases']} cases, {raw['5xx']} answered 5xx, {raw['wrong']} another status than "
        f"expected, {raw['not_json']} not JSON, {raw['left_open']} left the connection open, {raw['store']} changed "
        "the store.",
    ])
    print(text)
    if not args.no_write:
        write_section("fuzz", text)


if __name__ == "__main__":
    main()
