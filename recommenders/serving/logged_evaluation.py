"""How any model of a bundle would have done on logged traffic (``kgrec evaluate --logged``).

The store's impressions (``graph.impressions``) are grouped into the requests that showed them.
For each request:

* the **logging policy's** marginal probability of showing each pool item is recomputed from what
  the request stored — the pool, its logits and the policy's parameters (``policies.marginals``:
  exact for deterministic policies, Rao-Blackwellised Monte Carlo otherwise);
* the user's state **as of the request** is rebuilt from the log: the bundle's history plus the
  items chosen through earlier impressions (folded in), and the items shown and not chosen before
  (what ``learn`` and ``explore`` mask);
* the **target** — a bundle model under a serving policy — is asked through the read path
  (``Server.decide``) what it would have shown in that state.

The estimators are ``recommenders.evaluation.off_policy``'s (replay, IPS, SNIPS, DR, DM), per
request, with the reward model of DR a logistic regression on the logger's pool logit and rank,
cross-fitted over two halves of the users (an item shown and skipped before is predicted 0).
Dislikes and interactions written without naming an impression are not replayed: the state holds
only what the log itself says. Rewards: an impression counts 1 when feedback chose it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from kgrec.graph.impressions import Impression
from kgrec.recommenders.evaluation.off_policy import (
    Z95,
    Estimate,
    Slates,
    all_estimates,
    cluster_se,
    fit_logistic,
    predict_logistic,
)
from kgrec.recommenders.serving.policies import PolicySpec, marginals, policy_spec
from kgrec.recommenders.serving.query import Query, UserState
from kgrec.recommenders.serving.server import Server

#: Trust an estimate when the target's mass on items the logger could show is at least this...
MIN_COVERAGE = 0.95
#: ...and the effective sample size at least this (below it, the interval is wide and may be off).
MIN_ESS = 10_000.0


@dataclass(frozen=True)
class LoggedRequest:
    """One served list as the log holds it."""

    request: str
    user: str
    at: float
    model: str
    spec: PolicySpec
    items: tuple[str, ...]
    reward: tuple[int, ...]
    chosen_at: tuple[float | None, ...]
    pool: tuple[str, ...]
    pool_logits: np.ndarray


def logged_requests(impressions: Iterable[Impression]) -> list[LoggedRequest]:
    """The impressions grouped by request, in time order; a request whose first impression lacks
    the pool is given its shown items as the pool (exact for deterministic logging)."""
    by_request: dict[str, list[Impression]] = defaultdict(list)
    for imp in impressions:
        by_request[imp.request].append(imp)
    out = []
    for request, imps in by_request.items():
        imps.sort(key=lambda x: x.position)
        first = imps[0]
        spec = PolicySpec(first.policy, eps=first.eps, tau=first.tau, protect=first.protect)
        if first.pool is not None and first.pool_logits is not None and all(i.item in first.pool for i in imps):
            pool, logits = first.pool, np.asarray(first.pool_logits, np.float64)
        else:
            pool, logits = tuple(i.item for i in imps), -np.arange(len(imps), dtype=np.float64)
        out.append(LoggedRequest(
            request, first.user, first.at, first.model, spec, tuple(i.item for i in imps),
            tuple(int(i.chosen_at is not None) for i in imps), tuple(i.chosen_at for i in imps), pool, logits))
    out.sort(key=lambda r: (r.at, r.request))
    return out


def states_as_of(server: Server, requests: Sequence[LoggedRequest]) -> list[UserState]:
    """Each request's user state rebuilt from the log (see the module docstring)."""
    by_user: dict[str, list[int]] = defaultdict(list)
    for n, r in enumerate(requests):
        by_user[r.user].append(n)
    states: list[UserState] = [UserState()] * len(requests)
    for user, idx in by_user.items():
        base = server.bundle_history(user)
        dislikes = server.bundle_dislikes(user)
        for n in idx:
            at = requests[n].at
            chosen: dict[str, float] = {}
            shown: dict[str, int] = {}
            skipped: dict[str, int] = {}
            for m in idx:
                before = requests[m]
                if before.at >= at:
                    break
                for item, when in zip(before.items, before.chosen_at, strict=True):
                    shown[item] = shown.get(item, 0) + 1
                    if when is not None and when < at:
                        chosen[item] = 1.0
                    else:
                        skipped[item] = skipped.get(item, 0) + 1
            history = {**base, **chosen} if chosen.keys() - base.keys() else None
            states[n] = UserState(history=history, disliked=dislikes, known=True, shown=shown or None,
                                  skipped=skipped or None)
    return states


@dataclass(frozen=True)
class Target:
    """A bundle model served under a policy."""

    model: str
    policy: str

    @property
    def name(self) -> str:
        return f"{self.model}/{self.policy}"


@dataclass
class TargetReport:
    target: Target
    estimates: list[Estimate]
    coverage: float
    ess: float
    n: int
    #: per request: the target's items and their probability of being shown
    lists: list[dict[str, float]] = field(default_factory=list)

    @property
    def trusted(self) -> bool:
        return self.coverage >= MIN_COVERAGE and self.ess >= MIN_ESS

    def estimate(self, name: str) -> Estimate:
        return next(e for e in self.estimates if e.name == name)


@dataclass
class LoggedReport:
    requests: int
    impressions: int
    users: int
    logged_value: float  #: the logging policy's observed reward per request
    logged_lo: float
    logged_hi: float
    targets: list[TargetReport]


def _seed(request: str) -> int:
    return int.from_bytes(hashlib.sha256(request.encode()).digest()[:8], "big")


def _inclusion(spec: PolicySpec, pool: Sequence[str], logits: np.ndarray, k: int, samples: int,
               rng: np.random.Generator) -> dict[str, float]:
    probs = marginals(logits, k, spec, rng, samples).sum(axis=1)
    return {item: float(p) for item, p in zip(pool, probs, strict=True) if p > 0}


def _features(logits: np.ndarray) -> np.ndarray:
    m = len(logits)
    return np.column_stack([logits, np.log1p(np.arange(m)), np.ones(m)])


def _reward_model(requests: Sequence[LoggedRequest]) -> list[np.ndarray]:
    """Per request: the predicted reward of every pool item (cross-fitted by user halves)."""
    fold = np.array([_seed(r.user) % 2 for r in requests], dtype=np.int64)
    feats, ys, folds = [], [], []
    for r, f in zip(requests, fold, strict=True):
        at = {item: j for j, item in enumerate(r.pool)}
        rows = _features(r.pool_logits)[[at[i] for i in r.items]]
        feats.append(rows)
        ys.append(np.asarray(r.reward, np.float64))
        folds.append(np.full(len(rows), f))
    if not feats:
        return []
    x, y, fo = np.concatenate(feats), np.concatenate(ys), np.concatenate(folds)
    weights = {f: fit_logistic(x[fo != f], y[fo != f]) for f in (0, 1)}
    return [predict_logistic(_features(r.pool_logits), weights[int(f)]) for r, f in zip(requests, fold, strict=True)]


def evaluate_logged(server: Server, impressions: Iterable[Impression], targets: Sequence[Target],
                    samples: int = 256, seed: int = 7,
                    progress: Callable[[int], object] | None = None) -> LoggedReport:
    """Estimate each target's reward per request on the logged requests (see the module docstring)."""
    requests = logged_requests(impressions)
    states = states_as_of(server, requests)
    rng = np.random.default_rng(seed)
    logger = [_inclusion(r.spec, r.pool, r.pool_logits, len(r.items), samples, rng) for r in requests]
    rhat = _reward_model(requests)
    users = np.array([_seed(r.user) for r in requests], dtype=np.uint64)
    rewards = np.array([sum(r.reward) for r in requests], dtype=np.float64)
    value, se = cluster_se(rewards, None, users)
    reports = []
    for target in targets:
        spec = policy_spec(target.policy)
        lists: list[dict[str, float]] = []
        for n, (r, state) in enumerate(zip(requests, states, strict=True)):
            q = Query(r.user, len(r.items), target.model, policy=target.policy, seed=_seed(r.request))
            decision = server.decide(q, state)
            if spec.explores:
                lists.append(_inclusion(spec, decision.pool, np.asarray(decision.pool_logits), len(r.items),
                                        samples, rng))
            else:
                lists.append({s.item: 1.0 for s in decision.served})
            if progress is not None:
                progress(n)
        reports.append(_target_report(target, requests, states, logger, rhat, lists, users))
    n_imps = sum(len(r.items) for r in requests)
    return LoggedReport(len(requests), n_imps, len({r.user for r in requests}), value, value - Z95 * se,
                        value + Z95 * se, reports)


def _target_report(target: Target, requests: Sequence[LoggedRequest], states: Sequence[UserState],
                   logger: Sequence[dict[str, float]], rhat: Sequence[np.ndarray], lists: list[dict[str, float]],
                   users: np.ndarray) -> TargetReport:
    req, y, p0, pe, rh = [], [], [], [], []
    dm, covered, k_e = [], [], []
    for n, r in enumerate(requests):
        at = {item: j for j, item in enumerate(r.pool)}
        tail = float(rhat[n][-1]) if len(r.pool) else 0.0
        skipped = states[n].skipped or {}
        for item, reward in zip(r.items, r.reward, strict=True):
            req.append(n)
            y.append(reward)
            p0.append(logger[n].get(item, 0.0))
            pe.append(lists[n].get(item, 0.0))
            rh.append(float(rhat[n][at[item]]))
        d = c = 0.0
        for item, p in lists[n].items():
            j = at.get(item)
            if j is not None:
                d += p * float(rhat[n][j])
                c += p if logger[n].get(item, 0.0) > 0 else 0.0
            elif item not in skipped:
                d += p * tail
        dm.append(d)
        covered.append(c)
        k_e.append(sum(lists[n].values()))
    slates = Slates(np.asarray(req, np.int64), np.asarray(y, np.float64), np.asarray(p0), np.asarray(pe),
                    np.asarray(rh), np.asarray(dm), np.asarray(covered), np.asarray(k_e), users)
    estimates = all_estimates(slates)
    total = float(np.sum(k_e))
    coverage = float(np.sum(covered) / total) if total else 0.0
    return TargetReport(target, estimates, coverage, estimates[0].ess, len(requests), lists)
