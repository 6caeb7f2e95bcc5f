"""What the hybrid is built from on one graph, and small helpers of its fit and ranking.

``applicable``: the configured components that apply to the snapshot (``Recommender.applies_to``),
so the location model joins the hybrid only where items have coordinates, and a hybrid on a graph
without them is exactly the hybrid without that model. ``same_fit``: whether a model fitted
elsewhere (by ``kgrec train`` or the tuner) can stand in for a component; ``cut_choices``: the
options a component chose on the hybrid's own validation cut when it was fitted on the whole graph. ``geo_shares``: the
geographic columns' part of a ranked score counts as the ``geo`` component's share, so the
component explains items that geography ranked high.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Recommender, ScoresAllItems, ScoresFromPlace
from kgrec.recommenders.models.geo import Geo
from kgrec.recommenders.registry import get


def applicable(components: Sequence[str], snapshot: GraphSnapshot) -> tuple[str, ...]:
    """The ``components`` that apply to ``snapshot``, in order."""
    return tuple(c for c in components if get(c).applies_to(snapshot))


def same_fit(done: Recommender, fresh: Recommender, snapshot: GraphSnapshot) -> bool:
    """Whether ``done`` is what fitting ``fresh`` on ``snapshot`` would give: same class,
    same config, fitted on a snapshot with the same fingerprint."""
    fitted_on = getattr(done, "snapshot", None)
    return (type(done) is type(fresh) and done.config == fresh.config
            and fitted_on is not None and fitted_on.fingerprint == snapshot.fingerprint)


def cut_choices(fitted: Mapping[str, Recommender], fresh: Callable[[str], Recommender], names: Sequence[str],
                snapshot: GraphSnapshot, fraction: float) -> dict[str, dict[str, float]]:
    """The options the ``geo`` component, fitted on the whole graph as this hybrid would fit it,
    chose on its validation cut (the same seeded cut the hybrid learns on): its twin on the cut's
    training part takes them rather than choosing again on a cut of the cut, as a tuned
    component's twin takes the tuner's choice."""
    out = {}
    for name in names:
        done = fitted.get(name)
        if (isinstance(done, Geo) and same_fit(done, fresh(name), snapshot) and done.validation
                and done.config.validation_fraction == fraction):
            out[name] = done.chosen
    return out


def scores_of(components: Mapping[str, Recommender], names: Sequence[str], user: str, exclude: np.ndarray,
                     at: tuple[float, float] | None = None) -> list[np.ndarray | None]:
    """Each named component's scores of every item for ``user`` (a copy): −inf on ``exclude`` and,
    for positive-only models, where the score is not above zero; None where it has nothing. With
    ``at``, components that measure distance (``ScoresFromPlace``) measure it from there."""
    out: list[np.ndarray | None] = []
    for name in names:
        rec = components[name]
        assert isinstance(rec, ScoresAllItems)  # checked when the component was made
        s = rec.score_from_place(user, *at) if at is not None and isinstance(rec, ScoresFromPlace) \
            else rec.score_user(user)
        if s is None:
            out.append(None)
            continue
        s = np.array(s, dtype=np.float64, copy=True)
        s[exclude] = -np.inf
        if rec.positive_only:
            s[s <= 0] = -np.inf
        out.append(s)
    return out


def component_shares(parts: np.ndarray, components: Sequence[str], geo_columns: int) -> np.ndarray:
    """Each component's share of each row's score: its two columns' parts (reciprocal rank and
    standardised score), plus, for ``geo``, the last ``geo_columns`` (the geographic features)."""
    n = len(components)
    shares = parts[:, 0 : 2 * n : 2] + parts[:, 1 : 2 * n : 2]
    if geo_columns and "geo" in components:
        shares[:, list(components).index("geo")] += parts[:, parts.shape[1] - geo_columns:].sum(axis=1)
    return shares


def spread(cand: np.ndarray, score: np.ndarray | None, n: int) -> np.ndarray | None:
    """Candidate scores as a vector over all ``n`` items (−inf elsewhere); None without candidates."""
    if score is None or len(cand) == 0:
        return None
    out = np.full(n, -np.inf)
    out[cand] = score
    return out
