"""An "old" version of a graph for warm-start tests: the graph as it was before some users,
some items and a few more interactions arrived (``older``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kgrec.graph.records import GraphRecords


def older(records: GraphRecords, *, share: float = 0.05, new_users: int = 3, new_items: int = 4,
          seed: int = 7) -> tuple[GraphRecords, frozenset[str], frozenset[str]]:
    """``records`` without ``new_users`` users and ``new_items`` items (all their edges) and
    without random other interactions until ``share`` of them are gone; and those users and
    items."""
    rng = np.random.default_rng(seed)
    users = sorted({r.user for r in records.interactions})
    audience: dict[str, int] = {}
    for r in records.interactions:
        audience[r.item] = audience.get(r.item, 0) + 1
    items = sorted(i for i, n in audience.items() if n >= 2)
    gone_users = frozenset(rng.choice(users, size=new_users, replace=False).tolist())
    gone_items = frozenset(rng.choice(items, size=new_items, replace=False).tolist())
    keep = [r for r in records.interactions if r.user not in gone_users and r.item not in gone_items]
    extra = round(share * len(records.interactions)) - (len(records.interactions) - len(keep))
    if extra > 0:
        drop = set(rng.choice(len(keep), size=min(extra, len(keep) // 2), replace=False).tolist())
        keep = [r for k, r in enumerate(keep) if k not in drop]
    pairs = {(r.user, r.item) for r in keep}
    old = replace(
        records,
        users=[u for u in records.users if u.id not in gone_users],
        items=[i for i in records.items if i.id not in gone_items],
        interactions=keep,
        taggings=[t for t in records.taggings if (t.user, t.item) in pairs],
        item_tags=[t for t in records.item_tags if t.item not in gone_items],
        follows=[f for f in records.follows if f.user not in gone_users and f.friend not in gone_users],
        facts=[f for f in records.facts if f.item not in gone_items],
        dislikes=[d for d in records.dislikes if d.user not in gone_users and d.item not in gone_items],
        has_attribute=[a for a in records.has_attribute if a.user not in gone_users],
        hidden=[h for h in records.hidden if h not in gone_items],
    )
    return old, gone_users, gone_items
