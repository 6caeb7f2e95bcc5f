"""Serving policies and off-policy estimators: exact propensities, marginals, IPS vs replay, and
the exploring policy learning a planted preference through the read path."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from kgrec.graph.records import GraphRecords, Interaction, Item, ItemTag, Tag
from kgrec.graph.snapshot import build_snapshot
from kgrec.recommenders.bundle.model_bundle import fit_models
from kgrec.recommenders.evaluation.off_policy import Slates, all_estimates, ess, ips, replay, snips
from kgrec.recommenders.serving.policies import (
    PolicySpec,
    marginals,
    policy_spec,
    pool_logits,
    sample_slate,
    slot_probs,
)
from kgrec.recommenders.serving.query import Query, UserState
from kgrec.recommenders.serving.server import Server

EXPLORE = policy_spec("explore")


@pytest.mark.parametrize("spec", [EXPLORE, PolicySpec("x", eps=0.5, tau=0.5, protect=0),
                                  PolicySpec("y", eps=1.0, tau=2.0, protect=1), policy_spec("learn")])
def test_logged_propensities_sum_to_one_per_slot(spec: PolicySpec) -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(size=int(rng.integers(1, 40)))
        slate = sample_slate(logits, 10, spec, rng)
        remaining = np.ones(len(logits), bool)
        for s, (j, p) in enumerate(zip(slate.idx, slate.propensity, strict=True)):
            probs = slot_probs(logits, remaining, spec.eps_at(s), spec.tau)
            assert math.isclose(probs.sum(), 1.0, abs_tol=1e-12)
            assert probs[~remaining].sum() == 0
            assert probs[j] == p and 0 < p <= 1
            if spec.eps_at(s) == 0:
                assert p == 1.0 and not slate.explored[s]
            remaining[j] = False
        assert len(set(slate.idx.tolist())) == len(slate.idx) == min(10, len(logits))


def test_slates_are_drawn_with_the_logged_probabilities() -> None:
    """The frequency of each whole slate matches the product of its slot propensities."""
    logits = np.array([1.0, 0.6, 0.1, -0.4, -1.0])
    spec = PolicySpec("x", eps=0.6, tau=0.7, protect=1)
    rng = np.random.default_rng(1)
    n = 20_000
    seen: Counter[tuple[int, ...]] = Counter()
    prob: dict[tuple[int, ...], float] = {}
    for _ in range(n):
        slate = sample_slate(logits, 3, spec, rng)
        key = tuple(slate.idx.tolist())
        seen[key] += 1
        prob[key] = float(np.prod(slate.propensity))
    assert math.isclose(sum(prob.values()), 1.0, abs_tol=0.02)  # (nearly) every slate of mass was drawn
    for key, count in seen.items():
        expected = n * prob[key]
        assert abs(count - expected) <= 5 * math.sqrt(expected) + 3, key


def _brute_force(logits: np.ndarray, k: int, spec: PolicySpec) -> np.ndarray:
    m = len(logits)
    out = np.zeros((m, k))
    for perm in itertools.permutations(range(m), k):
        remaining, p = np.ones(m, bool), 1.0
        for s, j in enumerate(perm):
            p *= slot_probs(logits, remaining, spec.eps_at(s), spec.tau)[j]
            remaining[j] = False
        for s, j in enumerate(perm):
            out[j, s] += p
    return out


def test_marginals_match_enumeration_and_are_exact_when_greedy() -> None:
    logits = np.array([0.0, -0.3, -0.5, -1.2, -2.0, -2.1])
    spec = PolicySpec("x", eps=0.4, tau=1.0, protect=1)
    est = marginals(logits, 3, spec, np.random.default_rng(2), n_samples=20_000)
    truth = _brute_force(logits, 3, spec)
    assert np.allclose(est.sum(axis=0), 1.0)
    assert np.abs(est - truth).max() < 0.01
    greedy = marginals(logits, 3, policy_spec("learn"), np.random.default_rng(0))
    assert greedy.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_pool_logits_follow_the_pool_order_across_sources() -> None:
    z = pool_logits([5.0, 3.0, 1.0, 0.9, 400.0, 10.0], ["a", "a", "a", "a", "b", "b"])
    assert all(x >= y for x, y in itertools.pairwise(z)) and z[0] == 0.0
    assert z[4] < z[3]  # a later source's best never outranks the first source


def _uniform_log(seed: int, users: int = 300, m: int = 40, k: int = 5) -> tuple[Slates, float]:
    """A uniformly random logger (eps 1, equal logits) showing k of m items with fixed reward rates;
    the target shows a fixed top k. Returns the slates and the target's true value per request."""
    rng = np.random.default_rng(seed)
    rate = np.linspace(0.6, 0.01, m)
    target = np.argsort(-(rate + rng.normal(0, 0.05, m)))[:k]
    spec = PolicySpec("uniform", eps=1.0, tau=1.0, protect=0)
    p0 = marginals(np.zeros(m), k, spec, rng, 4000).sum(axis=1)  # = k/m for every item
    req, y, p0s, pe, rh, clusters = [], [], [], [], [], []
    for r in range(users):
        slate = sample_slate(np.zeros(m), k, spec, rng)
        for j in slate.idx:
            req.append(r)
            y.append(float(rng.random() < rate[j]))
            p0s.append(p0[j])
            pe.append(1.0 if j in target else 0.0)
            rh.append(0.0)
        clusters.append(r)
    n = users
    slates = Slates(np.array(req), np.array(y), np.array(p0s), np.array(pe), np.array(rh), np.zeros(n),
                    np.full(n, float(k)), np.full(n, float(k)), np.array(clusters))
    return slates, float(rate[target].sum())


def test_ips_equals_replay_in_expectation_on_a_uniform_logger() -> None:
    diffs, ipss, replays = [], [], []
    for seed in range(20):
        slates, truth = _uniform_log(seed)
        diffs.append(ips(slates).value - replay(slates).value)
        ipss.append(ips(slates).value - truth)
        replays.append(replay(slates).value - truth)
        assert math.isclose(snips(slates).value, replay(slates).value, rel_tol=0.02)  # constant propensities
    for errors in (diffs, ipss, replays):
        mean, se = float(np.mean(errors)), float(np.std(errors, ddof=1) / np.sqrt(len(errors)))
        assert abs(mean) <= 3 * se + 1e-3, (mean, se)


def test_intervals_cover_the_truth_and_ess_is_kish() -> None:
    covered = 0
    for seed in range(20):
        slates, truth = _uniform_log(100 + seed)
        est = ips(slates)
        covered += est.lo <= truth <= est.hi
    assert covered >= 16
    assert ess(np.ones(10)) == 10 and math.isclose(ess(np.array([1.0, 0.0, 0.0])), 1.0)
    assert [e.name for e in all_estimates(_uniform_log(0)[0])] == ["replay", "IPS", "SNIPS", "DR", "DM"]


def _planted() -> tuple[Server, dict[str, str]]:
    """Two communities of 60 items: 'a' has twice the users, and a newcomer likes only 'b'."""
    recs = GraphRecords()
    recs.tags = [Tag("a", "a"), Tag("b", "b")]
    group = {}
    for c in ("a", "b"):
        for n in range(60):
            item = f"{c}{n:02d}"
            group[item] = c
            recs.items.append(Item(item, item))
            recs.item_tags.append(ItemTag(item, c, 1.0))
    rng = np.random.default_rng(3)
    for u in range(180):
        c = "a" if u < 120 else "b"
        for n in rng.choice(60, 12, replace=False):
            recs.interactions.append(Interaction(f"u{u:03d}", f"{c}{n:02d}", 1.0))
    snap = build_snapshot(recs)
    models = fit_models(snap, ["itemcf", "popularity"], seed=1)
    return Server(snap, models, ["itemcf", "popularity"], default_model="itemcf"), group


def test_the_exploring_policy_converges_to_the_planted_best_arm() -> None:
    """A newcomer who only ever chooses community 'b' (the arm the popular prior ranks second) is
    served 12 rounds of 6 by ``explore`` through the read path, choices folded into their history
    and everything else counted as skipped: the lists converge to 'b', sooner than ``learn``'s (which
    reaches 'b' only once every 'a' item was skipped); ``greedy`` never finds it."""
    server, group = _planted()

    def play(policy: str) -> list[float]:
        history: dict[str, float] = {}
        shown: Counter[str] = Counter()
        share = []
        for t in range(12):
            state = UserState(history=history or None, known=bool(history), shown=dict(shown) or None,
                              skipped={i: n for i, n in shown.items() if i not in history} or None)
            served = server.decide(Query("newcomer", 6, policy=policy, seed=t), state).served
            share.append(sum(group[s.item] == "b" for s in served) / len(served))
            for s in served:
                shown[s.item] += 1
                if group[s.item] == "b":
                    history[s.item] = 1.0
        return share

    explore, learn = play("explore"), play("learn")
    assert explore[0] < 0.5  # the prior prefers 'a'
    assert min(explore[-4:]) >= 5 / 6 and np.mean(explore[-4:]) >= 0.9
    assert next(t for t, x in enumerate(explore) if x > 0) < next(t for t, x in enumerate(learn) if x > 0)
    assert max(play("greedy")) == 0.0  # today's behaviour never leaves the popular arm
