"""Serving policies: how a ranked candidate pool becomes the list shown, with the exact
probability of every choice.

Three policies (``Query.policy``; the server's default is ``learn``):

* ``greedy`` — today's behaviour: the top k, items a user skipped included (a user who ignores a
  list is shown the same list again).
* ``learn`` — greedy over what the user has not skipped: items shown and not chosen
  ``suppress_after`` times (read from the store's impressions, like feedback) are masked, and
  chosen items are folded into the history by models that fold it in (``FoldsInHistory``). It
  never stalls: every request shows items the user has not passed over. When fewer than k
  unsuppressed items remain the skipped ones come back, best first.
* ``explore`` — ``learn``'s pool of ``candidates`` items, drawn slot by slot without replacement:
  at slot s over the remaining pool R_s

      p_s(i) = (1 - eps_s) [i = argmax_{R_s} z] + eps_s softmax_{R_s}(z / tau)(i)

  with eps_s = 0 on the first ``protect`` slots, so each slot's probabilities sum to one exactly and
  the propensity logged for the item shown at slot s is p_s(item | items above it). ``z`` are the
  pool's standardised scores (``pool_logits``). An explored slot (not the greedy choice) says which
  tag it probes.

Deterministic policies log propensity 1. ``marginals`` gives the probability of each pool item at
each slot (exact for deterministic policies, Rao-Blackwellised Monte Carlo otherwise), which is
what off-policy estimators need (``recommenders.serving.logged_evaluation``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Recommendation
from kgrec.recommenders.serving.reason_json import Served

POLICIES = ("greedy", "learn", "explore")
#: What a request without ``policy`` gets (see benchmarks/RESULTS.md, "Learning while it serves").
DEFAULT_POLICY = "learn"


@dataclass(frozen=True)
class PolicySpec:
    """``suppress_after``: mask items skipped this many times (0: never); ``eps``/``tau``/``protect``:
    exploration per slot (``eps`` 0: deterministic); ``candidates``: the pool size when exploring."""

    name: str
    suppress_after: int = 1
    eps: float = 0.0
    tau: float = 1.0
    protect: int = 3
    candidates: int = 100

    @property
    def explores(self) -> bool:
        return self.eps > 0

    def eps_at(self, slot: int) -> float:
        """Exploration probability of a 0-based slot."""
        return 0.0 if slot < self.protect else self.eps


SPECS: dict[str, PolicySpec] = {
    "greedy": PolicySpec("greedy", suppress_after=0, protect=0),
    "learn": PolicySpec("learn", suppress_after=1, protect=0),
    "explore": PolicySpec("explore", suppress_after=1, eps=0.1, tau=1.0, protect=3, candidates=100),
}


def policy_spec(name: str) -> PolicySpec:
    """The named policy; ValueError naming the choices otherwise."""
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; expected one of {', '.join(POLICIES)}") from None


@dataclass(frozen=True)
class Slate:
    """A drawn list: positions in the pool, in slot order; each slot's propensity; whether it was
    not the greedy choice."""

    idx: np.ndarray
    propensity: np.ndarray
    explored: np.ndarray


def slot_probs(logits: np.ndarray, remaining: np.ndarray, eps: float, tau: float) -> np.ndarray:
    """The exact distribution of one slot over the pool (zero where not remaining); sums to 1."""
    p = np.zeros(len(logits))
    r = np.flatnonzero(remaining)
    if len(r) == 0:
        return p
    z = logits[r].astype(np.float64)
    if eps > 0:
        e = np.exp((z - z.max()) / tau)
        p[r] = eps * e / e.sum()
    p[r[int(np.argmax(z))]] += 1.0 - eps
    return p


def sample_slate(logits: np.ndarray, k: int, spec: PolicySpec, rng: np.random.Generator) -> Slate:
    """Draw ``min(k, len(logits))`` distinct pool positions slot by slot (greedy = the first of
    the highest logits, so a deterministic policy keeps the pool's order)."""
    logits = np.asarray(logits, np.float64)
    remaining = np.ones(len(logits), bool)
    n = min(k, len(logits))
    idx, prop, explored = np.empty(n, np.int64), np.empty(n), np.zeros(n, bool)
    for s in range(n):
        eps = spec.eps_at(s)
        p = slot_probs(logits, remaining, eps, spec.tau)
        greedy = int(np.flatnonzero(remaining)[int(np.argmax(logits[remaining]))])
        j = int(rng.choice(len(p), p=p / p.sum())) if eps > 0 else greedy
        idx[s], prop[s], explored[s] = j, p[j], j != greedy
        remaining[j] = False
    return Slate(idx, prop, explored)


def pool_logits(scores: Sequence[float], sources: Sequence[str]) -> np.ndarray:
    """Scale-free logits of a pool ranked source by source: each run of one source standardised,
    ``(s - max) / sd``, and placed half a unit below the run before it, so the logits fall in pool
    order (greedy = the pool's order) and scores of different models are never compared."""
    s = np.nan_to_num(np.asarray(scores, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    out = np.empty(len(s))
    start, floor = 0, 0.0
    for end in range(1, len(s) + 1):
        if end < len(s) and sources[end] == sources[start]:
            continue
        run = s[start:end]
        sd = float(run.std())
        z = (run - run.max()) / (sd if sd > 1e-12 else 1.0)
        z = np.minimum.accumulate(z)  # a source's own order stands even where its scores tie or rise
        out[start:end] = z + floor
        floor = float(out[end - 1]) - 0.5
        start = end
    return out


def marginals(logits: np.ndarray, k: int, spec: PolicySpec, rng: np.random.Generator,
              n_samples: int = 256) -> np.ndarray:
    """``P[i, s]``: the probability that pool position i is shown at slot s. Exact for a
    deterministic policy; otherwise prefixes are sampled and the exact conditional slot
    distribution given each prefix is averaged (never zero for an item the policy can show).
    Columns sum to one; a row sums to the item's probability of being shown."""
    logits = np.asarray(logits, np.float64)
    m = len(logits)
    n = min(k, m)
    out = np.zeros((m, n))
    order = np.argsort(-logits, kind="stable")
    if not any(spec.eps_at(s) > 0 for s in range(n)):
        out[order[:n], np.arange(n)] = 1.0
        return out
    remaining = np.ones((n_samples, m), bool)
    rows = np.arange(n_samples)
    for s in range(n):
        eps = spec.eps_at(s)
        greedy = order[np.argmax(remaining[:, order], axis=1)]
        if eps > 0:
            z = np.where(remaining, logits[None, :] / spec.tau, -np.inf)
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            cond = eps * e / e.sum(axis=1, keepdims=True)
            cond[rows, greedy] += 1.0 - eps
            out[:, s] = cond.mean(axis=0)
            pick_soft = np.argmax(z + rng.gumbel(size=(n_samples, m)), axis=1)
            pick = np.where(rng.random(n_samples) < eps, pick_soft, greedy)
        else:
            np.add.at(out[:, s], greedy, 1.0 / n_samples)
            pick = greedy
        remaining[rows, pick] = False
    return out


def exploration_text(tag: str | None, shown_with_tag: int) -> str:
    """Why an explored item is shown."""
    if tag is None:
        return "shown to learn whether you like it: it ranks lower for you, and showing it now and then tells us more"
    if shown_with_tag == 0:
        return f"shown to learn whether you like {tag}: you have not been shown any yet"
    times = "once" if shown_with_tag == 1 else f"{shown_with_tag} times"
    return f"shown to learn whether you like {tag}: you have been shown it only {times}"


@dataclass(frozen=True)
class Decision:
    """What ``Server.decide`` served and what the policy saw: the pool it drew from (ids, in
    rank order), the pool's logits and the policy, so that any propensity can be recomputed."""

    served: list[Served]
    spec: PolicySpec
    pool: tuple[str, ...]
    pool_logits: tuple[float, ...]


def suppressed(skipped: Mapping[str, int] | None, spec: PolicySpec) -> list[str]:
    """The items a policy masks: shown and not chosen at least ``suppress_after`` times."""
    if not skipped or spec.suppress_after <= 0:
        return []
    return [item for item, n in skipped.items() if n >= spec.suppress_after]


def draw(picked: Sequence[Recommendation], spec: PolicySpec, k: int, seed: int | None) -> tuple[Slate, np.ndarray]:
    """The slate a policy shows from a ranked pool, and the pool's logits."""
    logits = pool_logits([r.score for r in picked], [r.source for r in picked])
    if not spec.explores:
        n = min(k, len(picked))
        return Slate(np.arange(n), np.ones(n), np.zeros(n, bool)), logits
    return sample_slate(logits, k, spec, np.random.default_rng(seed)), logits


def probe_text(snapshot: GraphSnapshot, item: str, shown: Mapping[str, int] | None) -> str:
    """Why an explored item is shown: its tag the user has been shown least (ties: the item's
    strongest such tag), and how often they have been shown it."""
    i = snapshot.items.get(item)
    it = snapshot.item_tags
    if i is None or it.indptr[i] == it.indptr[i + 1]:
        return exploration_text(None, 0)
    tags = it.indices[it.indptr[i]:it.indptr[i + 1]]
    weight = it.data[it.indptr[i]:it.indptr[i + 1]]
    seen = np.fromiter((j for j in map(snapshot.items.get, shown or ()) if j is not None), dtype=np.int64)
    counts = np.zeros(len(tags))
    if len(seen):
        times = np.fromiter(((shown or {})[snapshot.items.ids[j]] for j in seen), dtype=np.float64)
        counts = _tag_counts(it, seen, times)[tags]
    best = min(range(len(tags)), key=lambda n: (counts[n], -weight[n], int(tags[n])))
    return exploration_text(str(snapshot.tag_names[int(tags[best])]), int(counts[best]))


def _tag_counts(item_tags: Any, items: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per tag: how many times the user was shown an item carrying it."""
    out = np.zeros(item_tags.shape[1])
    for j, n in zip(items.tolist(), times.tolist(), strict=True):
        out[item_tags.indices[item_tags.indptr[j]:item_tags.indptr[j + 1]]] += n
    return out
