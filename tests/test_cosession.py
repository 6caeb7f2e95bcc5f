"""Time-local co-occurrence and EASE on it: exact kernel weights, positive semi-definite,
and nothing changes on a graph without timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.graph.records import GraphRecords, Interaction, Item, User
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.recommenders.models.cosession import has_timestamps, local_gram
from kgrec.recommenders.models.ease import EASE


def tiny(stamped: bool = True) -> GraphSnapshot:
    """u1 chose a, b, c (in that time order) and d without a time; u2 chose c then a."""
    recs = GraphRecords()
    recs.users = [User("u1"), User("u2")]
    recs.items = [Item(i, i) for i in "abcd"]
    rows = [("u1", "a", 30), ("u1", "b", 10), ("u1", "c", 20), ("u1", "d", None), ("u2", "c", 5), ("u2", "a", 6)]
    recs.interactions = [Interaction(u, i, 1.0, None, (ts if stamped else None)) for u, i, ts in rows]
    return build_snapshot(recs)


def test_kernel_weights_follow_each_timeline() -> None:
    snap = tiny()
    position = np.arange(len(snap.items))
    g = local_gram(snap, position, window=1.0).toarray()
    a, b, c, d = (snap.items.index[i] for i in "abcd")
    # u1's order by time: b (10), c (20), a (30); u2's: c (5), a (6); d has no time
    assert g[b, c] == pytest.approx(np.exp(-1)) and g[c, a] == pytest.approx(np.exp(-1) + np.exp(-1))
    assert g[b, a] == pytest.approx(np.exp(-2))
    assert np.allclose(g, g.T)
    assert g[a, a] == 2 and g[b, b] == 1 and g[c, c] == 2
    assert g[d].sum() == 0  # an interaction without a timestamp takes no part
    only = np.full(len(snap.items), -1)
    only[[a, c]] = [0, 1]  # modelled items only, in the model's own order
    assert local_gram(snap, only, window=1.0).toarray() == pytest.approx(g[np.ix_([a, c], [a, c])])


def test_the_sum_is_positive_semi_definite(snapshot: GraphSnapshot) -> None:
    g = local_gram(snapshot, np.arange(len(snapshot.items)), window=3.0).toarray()
    assert has_timestamps(snapshot)
    assert np.linalg.eigvalsh(g).min() > -1e-9


def test_ease_uses_it_only_where_there_are_timestamps(snapshot: GraphSnapshot) -> None:
    user = snapshot.users.ids[4]
    plain = EASE(lam=30.0).fit(snapshot).score_user(user)
    local = EASE(lam=30.0, local_weight=2.0).fit(snapshot).score_user(user)
    assert not np.allclose(plain, local)
    bare = tiny(stamped=False)
    assert not has_timestamps(bare)
    assert np.array_equal(EASE(lam=1.0, min_users=1).fit(bare).score_user("u1"),
                          EASE(lam=1.0, min_users=1, local_weight=2.0).fit(bare).score_user("u1"))
    with pytest.raises(ValueError, match="local_weight"):
        EASE(local_weight=-1.0).fit(snapshot)
