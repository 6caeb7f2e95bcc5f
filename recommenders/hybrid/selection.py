"""What the hybrid serves: its learned ranker, or its best component, decided on validation.

On the validation cut every candidate ranker is trained on one half of the users and scores
the other half (and the other way round), so each user's list comes from a ranker that never
saw that user's held-out items; its NDCG@10 is compared with each component's own list on the
same users. The ranker with the best out-of-fold NDCG serves only if it beats the best
component by ``margin`` (relative) and by ``z`` standard errors of the paired per-user
difference (a lead a few users could make is not a lead); otherwise the hybrid serves that
component as it is. The record says what was served and why, with every value.

Feature groups that are optional (the rating features: ``optional``) are part of the choice:
each ranker is also scored without each of them, and a group serves only when a ranker using it
wins (``without`` names the groups the serving ranker does without).

Why a margin: the cut trains on 80 % of the user's graph while serving trains on all of it,
and some components gain more from the extra data than others (EASE on ml-latest-small:
1.02 × graph_walk at 64 % of the ratings, 1.15 × at 80 %), so a small lead of the ranker on
validation is not trusted to survive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NotRequired, TypedDict

import numpy as np

from kgrec.recommenders.evaluation.ranking_metrics import ndcg_of_lists
from kgrec.recommenders.hybrid.rankers import Ranker, make_ranker

K = 10


@dataclass
class Selection:
    """The decision and its evidence (validation NDCG@10, mean over ``users``)."""

    serve: str  # "ranker" or "component"
    ranker: str | None
    component: str | None
    reason: str
    users: int
    margin: float
    rankers: dict[str, float] = field(default_factory=dict)
    components: dict[str, float] = field(default_factory=dict)
    lead_z: float | None = None  # the best ranker's paired lead over the best component, in standard errors
    without: list[str] = field(default_factory=list)  # optional feature groups the serving ranker does without

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Evidence(TypedDict):
    """The ``Selection`` fields that ``select`` fills whatever it decides."""

    users: int
    margin: float
    rankers: dict[str, float]
    components: dict[str, float]
    lead_z: NotRequired[float]


def ranked_ndcg(cands: Sequence[np.ndarray], scores: Sequence[np.ndarray],
                relevant: Sequence[np.ndarray]) -> np.ndarray:
    """Per-user NDCG@10 of candidates ordered by score (ties by item index)."""
    ranked = [c[np.lexsort((c, -s))][:K] for c, s in zip(cands, scores, strict=True)]
    return ndcg_of_lists(ranked, list(relevant), K)


def out_of_fold(kind: str, rows: Sequence[np.ndarray], labels: Sequence[np.ndarray], seed: int,
                regularisation: float) -> list[np.ndarray]:
    """Each user's candidate scores from a ranker trained on the other half of the users."""
    fold = np.random.default_rng(seed).permutation(len(rows)) % 2
    out: list[np.ndarray] = [np.zeros(0)] * len(rows)
    for f in (0, 1):
        train = np.flatnonzero(fold != f).tolist()
        ranker = make_ranker(kind, regularisation).fit([rows[i] for i in train], [labels[i] for i in train], seed)
        for i in np.flatnonzero(fold == f).tolist():
            out[i] = ranker.score(rows[i])
    return out


def _without(rows: Sequence[np.ndarray], columns: Sequence[int]) -> list[np.ndarray]:
    return [np.delete(r, list(columns), axis=1) for r in rows] if columns else list(rows)


def select(rows: Sequence[np.ndarray], labels: Sequence[np.ndarray], cands: Sequence[np.ndarray],
           relevant: Sequence[np.ndarray], component_lists: Mapping[str, Sequence[np.ndarray]],
           kinds: Sequence[str], seed: int, margin: float, regularisation: float,
           z: float = 2.0, optional: Mapping[str, Sequence[int]] | None = None) -> tuple[Selection, Ranker | None]:
    """Compare the rankers (out of fold; each also without each ``optional`` group of feature
    columns) with the components and fit the winner on all users."""
    comp_users = {name: ndcg_of_lists(list(lists), list(relevant), K) for name, lists in component_lists.items()}
    comp = {name: float(v.mean()) for name, v in comp_users.items()}
    learnable = len(rows) >= 2 and any(lab.any() for lab in labels)
    groups = {f"{kind} without {g}": (kind, g) for g, cols in (optional or {}).items() if cols for kind in kinds}
    variants = {**groups, **{kind: (kind, None) for kind in kinds}}  # a tie goes to the ranker without
    rank_users = {name: ranked_ndcg(cands, out_of_fold(kind, _without(rows, (optional or {}).get(g or "", ())),
                                                       labels, seed, regularisation), relevant)
                  for name, (kind, g) in (variants.items() if learnable else ())}
    ranks = {kind: float(v.mean()) for kind, v in rank_users.items()}
    best_comp = max(comp, key=lambda c: (comp[c], -list(comp).index(c))) if comp else None
    best_rank = max(ranks, key=lambda r: (ranks[r], -list(ranks).index(r))) if ranks else None
    base: _Evidence = {"users": len(rows), "margin": margin, "rankers": ranks, "components": comp}
    if best_rank is not None and best_comp is not None:
        diff = rank_users[best_rank] - comp_users[best_comp]
        base["lead_z"] = float(diff.mean() / (diff.std(ddof=1) / np.sqrt(len(diff)))) if diff.std() > 0 else 0.0
    if best_rank is not None and (best_comp is None or (ranks[best_rank] > comp[best_comp] * (1 + margin)
                                                        and base["lead_z"] > z)):
        reason = (f"ranker {best_rank} {ranks[best_rank]:.4f} beats the best component "
                  f"{best_comp} {comp.get(best_comp, 0.0):.4f} by more than {margin:.1%} "
                  f"({base['lead_z']:.1f} standard errors)" if best_comp
                  else f"ranker {best_rank} {ranks[best_rank]:.4f}")
        kind, group = variants[best_rank]
        ranker = make_ranker(kind, regularisation).fit(_without(rows, (optional or {}).get(group or "", ())),
                                                      labels, seed)
        return Selection(serve="ranker", ranker=kind, component=None, reason=reason,
                         without=[group] if group else [], **base), ranker
    if best_comp is None:
        raise ValueError("the hybrid has no component that scores any validation user")
    if best_rank is not None:
        lead = (f"the best ranker, {best_rank} {ranks[best_rank]:.4f}, does not beat it by more than {margin:.1%} "
                f"and {z:g} standard errors ({base['lead_z']:.1f})")
    else:
        lead = "too little validation data to learn a ranker" if kinds else "no ranker was asked for"
    reason = f"component {best_comp} {comp[best_comp]:.4f} serves: {lead}"
    return Selection(serve="component", ranker=None, component=best_comp, reason=reason, **base), None
