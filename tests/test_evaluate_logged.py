"""``kgrec evaluate --logged``: off-policy estimates of bundle models on impressions the CLI logged, and
the log read back as requests and as-of states."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.impressions import Impression, Outcome, as_impression_store
from kgrec.graph.memory import MemoryStore
from kgrec.graph.records import Interaction
from kgrec.graph.snapshot import build_snapshot
from kgrec.loaders.synthetic import generate
from kgrec.recommenders.bundle.model_bundle import fit_models
from kgrec.recommenders.serving.logged_evaluation import Target, evaluate_logged, logged_requests, states_as_of
from kgrec.recommenders.serving.server import Server
from kgrec.recommenders.serving.server_loading import load_server


def _imp(request: str, user: str, item: str, p: int, at: float, chosen: float | None = None) -> Impression:
    first = p == 1
    return Impression(f"{request}:{p}", request, user, item, p, at, "learn", "itemcf", "itemcf", 1.0, 1.0 / p,
                      pool=("i0001", "i0002", "i0003") if first else None,
                      pool_logits=(0.0, -0.5, -1.0) if first else None, chosen_at=chosen)


def test_the_log_becomes_requests_and_states_as_of_each_request() -> None:
    g = generate(users=20, items=30, seed=2)
    snap = build_snapshot(g.records)
    server = Server(snap, fit_models(snap, ["itemcf", "popularity"], seed=1), ["itemcf", "popularity"])
    log = [_imp("reqaaaaaaaa", "u0001", "i0001", 1, 10.0, chosen=15.0), _imp("reqaaaaaaaa", "u0001", "i0002", 2, 10.0),
           _imp("reqbbbbbbbb", "u0001", "i0003", 1, 12.0), _imp("reqcccccccc", "u0001", "i0004", 1, 20.0)]
    requests = logged_requests(reversed(log))
    assert [r.request for r in requests] == ["reqaaaaaaaa", "reqbbbbbbbb", "reqcccccccc"]
    assert requests[0].items == ("i0001", "i0002") and requests[0].reward == (1, 0)
    assert requests[2].pool == ("i0004",)  # no pool logged: the shown items are the pool
    states = states_as_of(server, requests)
    assert states[0].skipped is None and states[0].history is None
    assert states[1].skipped == {"i0001": 1, "i0002": 1}  # chosen at 15: not yet at 12
    assert states[2].skipped == {"i0002": 1, "i0003": 1}  # chosen by 20: no longer a skip
    assert states[2].shown == {"i0001": 1, "i0002": 1, "i0003": 1}


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A synthetic graph, a bundle, two rounds of exploring lists logged by ``kgrec recommend``, and
    feedback choosing every item of a planted community."""
    tmp = tmp_path_factory.mktemp("logged")
    store_url = f"memory://{tmp / 'g'}"
    runner = CliRunner()
    for args in (["load", "synthetic", "--users", "60", "--items", "90", "--seed", "5", "--store", store_url,
                  "--no-progress"],
                 ["train", "--store", store_url, "--models", "itemcf,graph_walk,popularity", "--no-tune",
                  "--out", str(tmp / "b")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    for _ in range(2):
        result = runner.invoke(main, ["recommend", "--bundle", str(tmp / "b"), "--store", store_url, "--all-users",
                                      "--policy", "explore", "--log-impressions", "--format", "jsonl", "--k", "8"])
        assert result.exit_code == 0, result.output
        lines = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
        assert all(0 < r["propensity"] <= 1 and r["impression_id"] for x in lines for r in x["recommendations"])
        # feedback as POST /v1/interactions with impression_id writes it: the interaction and the outcome
        picked = [(x["user"], r["item"], r["impression_id"]) for x in lines for r in x["recommendations"]
                  if int(r["item"][1:]) % 3 == 0]
        store = MemoryStore(tmp / "g")
        with store.exclusive():
            store.upsert_interactions([Interaction(u, i, 1.0) for u, i, _ in picked])
            as_impression_store(store).record_outcomes([Outcome(imp, "chosen", time.time()) for _, _, imp in picked])
        store.close()
    return tmp / "b", store_url


def test_evaluate_logged_estimates_every_model_with_intervals(logged: tuple[Path, str], tmp_path: Path) -> None:
    bundle, store_url = logged
    out = tmp_path / "ope.json"
    result = CliRunner().invoke(main, ["evaluate", "--logged", "--bundle", str(bundle), "--store", store_url,
                                       "--models", "itemcf,graph_walk", "--target-policy", "learn,explore",
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "SNIPS" in result.output and "itemcf/learn" in result.output
    report = json.loads(out.read_text())
    assert report["requests"] == 120 and report["impressions"] == 960
    assert [t["target"] for t in report["targets"]] == ["itemcf/learn", "itemcf/explore", "graph_walk/learn",
                                                        "graph_walk/explore"]
    for t in report["targets"]:
        assert set(t) >= {"replay", "IPS", "SNIPS", "DR", "DM", "ess", "coverage"}
        for name in ("IPS", "SNIPS", "DR"):
            assert t[name]["lo"] <= t[name]["value"] <= t[name]["hi"]
        assert t["ess"] > 0 and 0 <= t["coverage"] <= 1
    # the logging policy itself (the bundle's default model under explore) is estimated near what it earned
    default = load_server(bundle).default_model
    logger = next(t for t in report["targets"] if t["target"] == f"{default}/explore")
    assert logger["coverage"] > 0.99
    assert abs(logger["SNIPS"]["value"] - report["logged"]["value"]) <= 0.15 * report["logged"]["value"] + 0.05


def test_evaluate_logged_refuses_what_it_cannot_do(logged: tuple[Path, str], tmp_path: Path) -> None:
    bundle, store_url = logged
    runner = CliRunner()
    no_bundle = runner.invoke(main, ["evaluate", "--logged", "--store", store_url])
    assert no_bundle.exit_code == 2 and "--bundle" in no_bundle.output
    bad_model = runner.invoke(main, ["evaluate", "--logged", "--bundle", str(bundle), "--store", store_url,
                                     "--models", "nope"])
    assert bad_model.exit_code == 2 and "nope" in bad_model.output
    empty = runner.invoke(main, ["evaluate", "--logged", "--bundle", str(bundle), "--store",
                                 f"memory://{tmp_path / 'empty'}"])
    assert empty.exit_code != 0


def test_a_target_equal_to_the_logger_recovers_the_logged_value() -> None:
    """Deterministic logging evaluated against itself: weights are 1 and every estimator but DM
    returns the observed reward exactly."""
    g = generate(users=30, items=40, seed=6)
    snap = build_snapshot(g.records)
    server = Server(snap, fit_models(snap, ["itemcf", "popularity"], seed=1), ["itemcf", "popularity"])
    from kgrec.recommenders.serving.impression_log import impressions
    from kgrec.recommenders.serving.query import Query

    log = []
    rng = np.random.default_rng(0)
    for n, user in enumerate(snap.users.ids[:20]):
        decision = server.decide(Query(user, 5, "itemcf", policy="learn"))
        rows = impressions(decision, f"request{n:04d}", user, "itemcf", at=float(n))
        log += [r if rng.random() > 0.3 else Impression(**{**r.__dict__, "chosen_at": 1e9}) for r in rows]
    report = evaluate_logged(server, log, [Target("itemcf", "learn")])
    t = report.targets[0]
    assert t.coverage == 1.0
    for name in ("replay", "IPS", "SNIPS", "DR"):
        assert t.estimate(name).value == pytest.approx(report.logged_value), name
