"""Explaining a graph-walk score: every path's share first, as arrays; Reasons only for the best.

A walk score is a sum over three path families: user → item → user → item (one share per
own item j), user → item → tag → item (one share per tag, pooled over the user's items that
carry it) and user → friend → item (one share per friend). An item can have hundreds of
such paths and serving shows five, so the shares are computed with numpy, ranked, and only
the top ``limit`` become ``Reason`` objects (names, text, Cypher); the rest are reported by
count and sum, so shown plus omitted still add up to the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recommenders.base import Reason, TopReasons
from recommenders.scored import RowEntries, dense_column, ranked_shares

if TYPE_CHECKING:
    from recommenders.graph_walk import GraphWalk

CO, TAG, FRIEND = 0, 1, 2


@dataclass(frozen=True)
class _UserWalks:
    """What explaining any item for one user needs, gathered once per user: the first step
    and the rows of the item→item walks, the item→tag step and the friends' items."""

    u: int
    items: np.ndarray
    p_items: np.ndarray
    friends: np.ndarray
    p_friends: np.ndarray
    via_user: RowEntries
    via_tag: RowEntries
    item_tags: RowEntries
    friend_items: RowEntries


def _user_walks(model: GraphWalk, u: int) -> _UserWalks:
    """The per-user part, kept for the last user asked about (a served list explains k items
    of one user in a row); the cache is one immutable tuple, replaced whole."""
    cached = model.__dict__.get("_explain_user")
    if cached is not None and cached[0] is model._s_user and cached[1].u == u:
        return cached[1]
    items, p_items, friends, p_friends = model._start(u)
    walks = _UserWalks(u, items, p_items, friends, p_friends,
                       RowEntries.of(model._s_user, items), RowEntries.of(model._s_tag, items),
                       RowEntries.of(model._p_it, items), RowEntries.of(model._p_ui, friends))
    model.__dict__["_explain_user"] = (model._s_user, walks)
    return walks


def explain_top(model: GraphWalk, u: int, i: int, limit: int | None) -> TopReasons:
    """The ``limit`` highest-mass paths from user ``u`` to item ``i`` (all when None)."""
    w = _user_walks(model, u)
    items, p_items, friends, p_friends = w.items, w.p_items, w.friends, w.p_friends
    via_user = w.via_user.column(i, len(items))
    via_tag = w.via_tag.column(i, len(items))

    # user -> j -> co-user -> i: one path family per own item j
    co = np.flatnonzero(via_user > 0)
    co_share = p_items[co] * via_user[co]

    # user -> j -> tag -> i: split j's tag mass over the tags j shares with i, then pool by tag
    tag_j = np.flatnonzero(via_tag > 0)
    tags_t = np.zeros(0, dtype=np.int64)
    tag_share = np.zeros(0)
    tag_best = np.zeros(0, dtype=np.int64)
    tag_count = np.zeros(0, dtype=np.int64)
    if len(tag_j):
        from_tags = dense_column(model._ti_csc, i)  # P(tag -> i), by tag
        it = w.item_tags
        mass = it.vals * from_tags[it.cols]
        keep = (mass > 0) & (via_tag[it.owner] > 0)
        t_all, mass, owner = it.cols[keep], mass[keep], it.owner[keep]  # owner: a position in items
        per_j = np.bincount(owner, weights=mass, minlength=len(items))
        share = (p_items * via_tag)[owner] * mass / per_j[owner]
        # per tag: total, the item with the largest share (first in history order on ties),
        # how many items, and the first entry (so tags keep the order they were met in)
        order = np.lexsort((np.arange(len(t_all)), -share, t_all))
        t_sorted = t_all[order]
        first = np.flatnonzero(np.concatenate(([True], t_sorted[1:] != t_sorted[:-1])))
        tags_t = t_sorted[first]
        tag_best = items[owner[order[first]]]
        totals = np.add.reduceat(share[order], first) if len(first) else np.zeros(0)
        tag_count = np.diff(np.append(first, len(t_sorted)))
        met = np.minimum.reduceat(order, first) if len(first) else np.zeros(0, dtype=np.int64)
        by_meeting = np.argsort(met, kind="stable")
        tags_t, tag_best, tag_count, tag_share = tags_t[by_meeting], tag_best[by_meeting], tag_count[by_meeting], \
            totals[by_meeting]

    # user -> friend -> i
    fr = np.zeros(0, dtype=np.int64)
    fr_share = np.zeros(0)
    if model._w_social > 0 and len(friends):
        into = w.friend_items.column(i, len(friends))
        fr = np.flatnonzero(into > 0)
        fr_share = p_friends[fr] * into[fr] * model._w_social * model._penalty[i]

    kinds = np.concatenate((np.full(len(co), CO), np.full(len(tags_t), TAG), np.full(len(fr), FRIEND)))
    which = np.concatenate((np.arange(len(co)), np.arange(len(tags_t)), np.arange(len(fr)))).astype(np.int64)
    shares = np.concatenate((co_share, tag_share, fr_share)).astype(np.float64)
    shown, rest = ranked_shares(shares, limit)

    title = model.snapshot.title(i)
    reasons: list[Reason] = []
    for k in shown.tolist():
        kind, w, share = int(kinds[k]), int(which[k]), float(shares[k])
        if kind == CO:
            reasons.append(_co_reason(model, u, int(items[co[w]]), i, share, title))
        elif kind == TAG:
            reasons.append(_tag_reason(model, u, int(tag_best[w]), int(tags_t[w]), i, share,
                                       int(tag_count[w]), title))
        else:
            reasons.append(_friend_reason(model, u, int(friends[fr[w]]), i, share, title))
    omitted = shares[rest]
    return TopReasons(tuple(reasons), len(rest), float(omitted.sum()), float(np.abs(omitted).sum()))


def _co_reason(model: GraphWalk, u: int, j: int, i: int, share: float, title: str) -> Reason:
    """The co-user who carries the most walk mass from j to i stands for the path."""
    p_iu = model._p_iu
    users_j = p_iu.indices[p_iu.indptr[j] : p_iu.indptr[j + 1]]
    col = model._ui_csc
    col_users, col_p = col.indices[col.indptr[i] : col.indptr[i + 1]], col.data[col.indptr[i] : col.indptr[i + 1]]
    at = np.minimum(np.searchsorted(col_users, users_j), max(len(col_users) - 1, 0))
    into_i = np.where(col_users[at] == users_j, col_p[at], 0.0) if len(col_users) else np.zeros(len(users_j))
    mass = p_iu.data[p_iu.indptr[j] : p_iu.indptr[j + 1]] * into_i
    v = int(users_j[np.argmax(mass)])
    n = int(np.count_nonzero(mass > 0))
    text = f"You interacted with {model.snapshot.title(j)}; {n} people who did also chose {title}"
    return model._paths.co_interaction(u, j, v, i, share, text)


def _tag_reason(model: GraphWalk, u: int, j: int, t: int, i: int, share: float, n: int, title: str) -> Reason:
    others = f" and {n - 1} more of your items" if n > 1 else ""
    text = f"You interacted with {model.snapshot.title(j)}{others}, tagged {model.snapshot.tag_names[t]} like {title}"
    return model._paths.shared_tag(u, j, t, i, share, text)


def _friend_reason(model: GraphWalk, u: int, f: int, i: int, share: float, title: str) -> Reason:
    text = f"You follow {model._paths.user(f).name or model.snapshot.users.ids[f]}, who chose {title}"
    return model._paths.friend(u, f, i, share, text)
