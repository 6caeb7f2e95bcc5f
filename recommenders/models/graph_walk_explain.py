"""Explaining a graph-walk score: every path's share first, as arrays; Reasons only for the best.

A walk score is a sum over four path families: user → item → user → item (one share per
own item j), user → item → tag → item (one share per tag, pooled over the user's items that
carry it), user → friend → item (one share per friend) and, on graphs with coordinates,
user → item → cell → item (one share per own item j near the item: the NEAR path). An item can have hundreds of
such paths and serving shows five, so the shares are computed with numpy, ranked, and only
the top ``limit`` become ``Reason`` objects (names, text, Cypher); the rest are reported by
count and sum, so shown plus omitted still add up to the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Reason, TopReasons
from kgrec.recommenders.models.geo_space import haversine_km, item_coordinates
from kgrec.recommenders.models.sparse_rows import RowEntries, dense_column, ranked_shares
from kgrec.recommenders.reason_paths import PathBuilder
from kgrec.recommenders.recent_user import RecentUser

CO, TAG, FRIEND, NEAR = 0, 1, 2, 3


@dataclass(frozen=True)
class GraphWalkState:
    """The fitted walk a ``GraphWalk`` hands its explainer, read-only: the explainer may read
    it but can neither change the model's matrices nor reach anything else of the model.

    Steps are row-normalised transition probabilities raised to alpha; ``s_user``/``s_tag``
    are the sparsified item→item walks through co-users and through tags."""

    p_ui: sp.csr_matrix  #: user → item
    p_iu: sp.csr_matrix  #: item → user
    p_it: sp.csr_matrix  #: item → tag
    p_uf: sp.csr_matrix  #: user → friend
    ui_csc: sp.csc_matrix  #: ``p_ui`` by column (who leads into an item)
    ti_csc: sp.csc_matrix  #: tag → item, by column
    s_user: sp.csr_matrix
    s_tag: sp.csr_matrix
    s_near: sp.csr_matrix  #: the item→item walks through NEAR cells
    penalty: np.ndarray  #: each item's popularity penalty
    w_social: float  #: weight of the user → friend → item paths

    @classmethod
    def of(cls, *, penalty: np.ndarray, w_social: float, **matrices: sp.spmatrix) -> GraphWalkState:
        """Read-only views of the model's own arrays (no copy)."""
        return cls(penalty=_read_only(penalty), w_social=float(w_social),
                   **{name: _frozen_matrix(m) for name, m in matrices.items()})

    def start(self, u: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The walk's first step from user ``u``: its items and friends with their probabilities."""
        p, f = self.p_ui, self.p_uf
        return (p.indices[p.indptr[u] : p.indptr[u + 1]], p.data[p.indptr[u] : p.indptr[u + 1]],
                f.indices[f.indptr[u] : f.indptr[u + 1]], f.data[f.indptr[u] : f.indptr[u + 1]])


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.setflags(write=False)
    return view


def _frozen_matrix(m: sp.spmatrix) -> sp.spmatrix:
    """The same compressed matrix over read-only views of its arrays."""
    out = type(m)((_read_only(m.data), _read_only(m.indices), _read_only(m.indptr)), shape=m.shape, copy=False)
    for a in (out.data, out.indices, out.indptr):  # scipy may have cast an index array into a copy
        a.setflags(write=False)
    out.has_sorted_indices = m.has_sorted_indices
    return out


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
    via_near: RowEntries
    item_tags: RowEntries
    friend_items: RowEntries


class GraphWalkExplainer:
    """Explains one fitted walk (a model builds a new explainer for every fit or load)."""

    def __init__(self, state: GraphWalkState, snapshot: GraphSnapshot, paths: PathBuilder) -> None:
        self.state = state
        self.snapshot = snapshot
        self.paths = paths
        self._recent: RecentUser[_UserWalks] = RecentUser()

    def _user_walks(self, u: int) -> _UserWalks:
        """The per-user part, kept for the last user asked about (a served list explains k items
        of one user in a row); the cache is one immutable value, replaced whole."""
        return self._recent.get(u, lambda: self._walks_of(u))

    def _walks_of(self, u: int) -> _UserWalks:
        st = self.state
        items, p_items, friends, p_friends = st.start(u)
        walks = _UserWalks(u, items, p_items, friends, p_friends,
                           RowEntries.of(st.s_user, items), RowEntries.of(st.s_tag, items),
                           RowEntries.of(st.s_near, items), RowEntries.of(st.p_it, items),
                           RowEntries.of(st.p_ui, friends))
        return walks

    def explain_top(self, u: int, i: int, limit: int | None) -> TopReasons:
        """The ``limit`` highest-mass paths from user ``u`` to item ``i`` (all when None)."""
        w = self._user_walks(u)
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
            from_tags = dense_column(self.state.ti_csc, i)  # P(tag -> i), by tag
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
        if self.state.w_social > 0 and len(friends):
            into = w.friend_items.column(i, len(friends))
            fr = np.flatnonzero(into > 0)
            fr_share = p_friends[fr] * into[fr] * self.state.w_social * self.state.penalty[i]

        # user -> j -> cell -> i: one path per own item j near i
        via_near = w.via_near.column(i, len(items))
        near = np.flatnonzero(via_near > 0)
        near_share = p_items[near] * via_near[near]

        kinds = np.concatenate((np.full(len(co), CO), np.full(len(tags_t), TAG), np.full(len(fr), FRIEND),
                                np.full(len(near), NEAR)))
        which = np.concatenate((np.arange(len(co)), np.arange(len(tags_t)), np.arange(len(fr)),
                                np.arange(len(near)))).astype(np.int64)
        shares = np.concatenate((co_share, tag_share, fr_share, near_share)).astype(np.float64)
        shown, rest = ranked_shares(shares, limit)

        title = self.snapshot.title(i)
        reasons: list[Reason] = []
        for k in shown.tolist():
            kind, pos, share = int(kinds[k]), int(which[k]), float(shares[k])
            if kind == CO:
                reasons.append(self._co_reason(u, int(items[co[pos]]), i, share, title))
            elif kind == TAG:
                reasons.append(self._tag_reason(u, int(tag_best[pos]), int(tags_t[pos]), i, share,
                                                int(tag_count[pos]), title))
            elif kind == FRIEND:
                reasons.append(self._friend_reason(u, int(friends[fr[pos]]), i, share, title))
            else:
                reasons.append(self._near_reason(u, int(items[near[pos]]), i, share, title))
        omitted = shares[rest]
        return TopReasons(tuple(reasons), len(rest), float(omitted.sum()), float(np.abs(omitted).sum()))

    def _co_reason(self, u: int, j: int, i: int, share: float, title: str) -> Reason:
        """The co-user who carries the most walk mass from j to i stands for the path."""
        p_iu = self.state.p_iu
        users_j = p_iu.indices[p_iu.indptr[j] : p_iu.indptr[j + 1]]
        col = self.state.ui_csc
        col_users, col_p = col.indices[col.indptr[i] : col.indptr[i + 1]], col.data[col.indptr[i] : col.indptr[i + 1]]
        at = np.minimum(np.searchsorted(col_users, users_j), max(len(col_users) - 1, 0))
        into_i = np.where(col_users[at] == users_j, col_p[at], 0.0) if len(col_users) else np.zeros(len(users_j))
        mass = p_iu.data[p_iu.indptr[j] : p_iu.indptr[j + 1]] * into_i
        v = int(users_j[np.argmax(mass)])
        n = int(np.count_nonzero(mass > 0))
        text = f"You interacted with {self.snapshot.title(j)}; {n} people who did also chose {title}"
        return self.paths.co_interaction(u, j, v, i, share, text)

    def _tag_reason(self, u: int, j: int, t: int, i: int, share: float, n: int, title: str) -> Reason:
        others = f" and {n - 1} more of your items" if n > 1 else ""
        snap = self.snapshot
        text = f"You interacted with {snap.title(j)}{others}, tagged {snap.tag_names[t]} like {title}"
        return self.paths.shared_tag(u, j, t, i, share, text)

    def _near_reason(self, u: int, j: int, i: int, share: float, title: str) -> Reason:
        lat, lon = item_coordinates(self.snapshot)
        km = float(haversine_km(lat[j], lon[j], lat[i], lon[i]))
        dist = f"{km * 1000:.0f} m" if km < 1 else f"{km:.1f} km"
        text = f"You checked in at {self.snapshot.title(j)}, {dist} from {title}"
        return self.paths.near_visited(u, j, i, share, text)

    def _friend_reason(self, u: int, f: int, i: int, share: float, title: str) -> Reason:
        text = f"You follow {self.paths.user(f).name or self.snapshot.users.ids[f]}, who chose {title}"
        return self.paths.friend(u, f, i, share, text)
