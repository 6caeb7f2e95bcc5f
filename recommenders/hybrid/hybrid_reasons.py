"""The hybrid's explanations: its components' own reasons, as evidence.

Behind a ranker, a candidate's score splits into per-feature parts (``Ranker.parts``); a
component's share is the part of its two features (reciprocal rank, standardised score). The
(at most ``EXPLAINING_COMPONENTS``) components with the largest positive shares explain the
item: each builds its own strongest ``limit`` reasons, scaled so that its reasons add up to
its share. When one component serves as it is, its reasons pass through unchanged (its
share is the whole score). Either way the omitted reasons are counted and summed the same
way, so shown + omitted equals the full explanation, and every reason is marked ``evidence``
and prefixed with the component's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Reason, Recommender, TopReasons, top_reasons


class Ranked(NamedTuple):
    """One user's hybrid ranking: candidate item indices (sorted), their scores, and each serving
    component's share of each score (columns in serving order; None when nothing was ranked)."""

    items: np.ndarray
    scores: np.ndarray
    shares: np.ndarray | None


class Explainers(NamedTuple):
    """Who explains a hybrid's items: the serving components in order, and whether one serves alone."""

    names: Sequence[str]
    alone: bool
    components: Mapping[str, Recommender]

#: Reasons come from the components with the largest positive parts of the score (at most this many).
EXPLAINING_COMPONENTS = 3


def explaining(shares: np.ndarray, names: Sequence[str], alone: bool) -> list[tuple[float, str]]:
    """The components that explain a candidate, with their shares of its score."""
    if alone:
        return [(float(shares[0]), names[0])]
    ranked = sorted(((float(s), n) for s, n in zip(shares, names, strict=True)), reverse=True)
    return [(share, n) for share, n in ranked[:EXPLAINING_COMPONENTS] if share > 0]


def explain_many(snap: GraphSnapshot, ranked: Ranked | None, by: Explainers, user_id: str,
                 item_ids: Sequence[str], limit: int | None) -> list[TopReasons]:
    """``explain`` cut to the ``limit`` strongest reasons, for several items of one user (ranked
    as ``ranked``; None: an unknown user): each component explains its items together and builds
    only its own ``limit`` best paths."""
    if ranked is None:
        return [TopReasons() for _ in item_ids]
    cand, _, shares = ranked
    names, alone = by.names, by.alone
    wanted: dict[str, list[tuple[int, float]]] = {}  # component -> [(item position, share)]
    for k, item_id in enumerate(item_ids):
        i = snap.items.get(item_id)
        pos = int(np.searchsorted(cand, i)) if i is not None else len(cand)
        if shares is None or pos >= len(cand) or cand[pos] != i:
            continue
        for share, cname in explaining(shares[pos], names, alone):
            wanted.setdefault(cname, []).append((k, share))
    shown: list[list[Reason]] = [[] for _ in item_ids]
    omitted = np.zeros(len(item_ids), dtype=np.int64)
    rest, rest_abs = np.zeros(len(item_ids)), np.zeros(len(item_ids))
    for cname, asks in wanted.items():
        tops = by.components[cname].explain_many(user_id, [item_ids[k] for k, _ in asks], limit)
        for (k, share), top in zip(asks, tops, strict=True):
            n = len(top.reasons) + top.omitted
            total = sum(abs(r.contribution) for r in top.reasons) + top.omitted_magnitude
            for r in top.reasons:
                weight = abs(r.contribution) / total if total > 0 else 1.0 / n
                value = r.contribution if alone else share * weight
                shown[k].append(replace(r, contribution=value, kind="evidence", text=f"[{cname}] {r.text}"))
            if top.omitted:
                part = (top.omitted_contribution if alone
                        else share * (top.omitted_magnitude / total if total > 0 else top.omitted / n))
                omitted[k] += top.omitted
                rest[k] += part
                rest_abs[k] += top.omitted_magnitude if alone else abs(part)
    out = []
    for k in range(len(item_ids)):
        top = top_reasons(shown[k], limit)
        out.append(TopReasons(top.reasons, int(omitted[k]) + top.omitted, float(rest[k]) + top.omitted_contribution,
                              float(rest_abs[k]) + top.omitted_magnitude))
    return out
