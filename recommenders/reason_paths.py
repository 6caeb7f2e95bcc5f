"""Reasons as real graph paths, each with the constant Cypher query that replays it.

Every path a recommender explains with has one of a few shapes. Each shape is a key in
``CYPHER`` whose value is a constant, parameterised query (labels and types come from
``graph/schema.py`` and are written out once, here), so nothing is ever formatted into
Cypher. ``PathBuilder`` turns snapshot indices into ``PathNode``s with readable names.
"""

from __future__ import annotations

import numpy as np

from kgrec.graph.schema import Label, Rel
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Derived, PathNode, PathRel, Reason

FWD_INTERACTED = PathRel(Rel.INTERACTED, True)
BACK_INTERACTED = PathRel(Rel.INTERACTED, False)
FWD_HAS_TAG = PathRel(Rel.HAS_TAG, True)
BACK_HAS_TAG = PathRel(Rel.HAS_TAG, False)
FWD_FOLLOWS = PathRel(Rel.FOLLOWS, True)
BACK_FOLLOWS = PathRel(Rel.FOLLOWS, False)
FWD_HAS_ATTRIBUTE = PathRel(Rel.HAS_ATTRIBUTE, True)
BACK_HAS_ATTRIBUTE = PathRel(Rel.HAS_ATTRIBUTE, False)
#: Two located items, as far apart as their ``Item.location`` points (computed, never stored).
NEAR = PathRel(Derived.NEAR, True)

Shape = tuple[tuple[Label, ...], tuple[PathRel, ...]]

#: The item alone (its audience is the reason): popularity.
ITEM: Shape = ((Label.ITEM,), ())
#: You interacted with an item: a path that ends at your own history.
USER_ITEM: Shape = ((Label.USER, Label.ITEM), (FWD_INTERACTED,))
#: You -> your item <- a co-user -> the item (co-interaction).
CO_INTERACTION: Shape = (
    (Label.USER, Label.ITEM, Label.USER, Label.ITEM),
    (FWD_INTERACTED, BACK_INTERACTED, FWD_INTERACTED),
)
#: You -> your item -> a tag <- the item (shared tag).
SHARED_TAG: Shape = ((Label.USER, Label.ITEM, Label.TAG, Label.ITEM), (FWD_INTERACTED, FWD_HAS_TAG, BACK_HAS_TAG))
#: You -> a friend -> the item (social).
FRIEND: Shape = ((Label.USER, Label.USER, Label.ITEM), (FWD_FOLLOWS, FWD_INTERACTED))
#: You -> a friend -> their friend -> the item (trust propagated over two hops).
FRIEND_OF_FRIEND: Shape = (
    (Label.USER, Label.USER, Label.USER, Label.ITEM),
    (FWD_FOLLOWS, FWD_FOLLOWS, FWD_INTERACTED),
)

#: You -> an attribute (age 25-34) <- a user who has it too -> the item (people like you chose it).
PEER_GROUP: Shape = (
    (Label.USER, Label.ATTRIBUTE, Label.USER, Label.ITEM),
    (FWD_HAS_ATTRIBUTE, BACK_HAS_ATTRIBUTE, FWD_INTERACTED),
)
#: An item -> a tag (the item carries a tag that a search's words name).
ITEM_TAG: Shape = ((Label.ITEM, Label.TAG), (FWD_HAS_TAG,))

#: You -> a place you visited, near the item (geography): the query returns the distance.
NEAR_VISITED: Shape = ((Label.USER, Label.ITEM, Label.ITEM), (FWD_INTERACTED, NEAR))
#: You -> a friend you follow -> a place they visited, near the item.
FRIEND_NEAR: Shape = ((Label.USER, Label.USER, Label.ITEM, Label.ITEM), (FWD_FOLLOWS, FWD_INTERACTED, NEAR))
#: You <- a friend who follows you -> a place they visited, near the item.
FOLLOWER_NEAR: Shape = ((Label.USER, Label.USER, Label.ITEM, Label.ITEM), (BACK_FOLLOWS, FWD_INTERACTED, NEAR))

#: An item <- a user -> another item (shared audience): why two items are similar.
ITEM_CO_AUDIENCE: Shape = ((Label.ITEM, Label.USER, Label.ITEM), (BACK_INTERACTED, FWD_INTERACTED))
#: An item -> a tag <- another item (shared tag): why two items are similar.
ITEM_SHARED_TAG: Shape = ((Label.ITEM, Label.TAG, Label.ITEM), (FWD_HAS_TAG, BACK_HAS_TAG))

#: Replay queries, keyed by shape; parameters are the node keys ``$n0 .. $nK`` in path order.
CYPHER: dict[Shape, str] = {
    ITEM: "MATCH (i:Item {id: $n0}) OPTIONAL MATCH (i)<-[r:INTERACTED]-(:User) RETURN i, count(r) AS audience",
    USER_ITEM: "MATCH p = (u:User {id: $n0})-[:INTERACTED]->(j:Item {id: $n1}) RETURN p",
    CO_INTERACTION: (
        "MATCH p = (u:User {id: $n0})-[:INTERACTED]->(j:Item {id: $n1})"
        "<-[:INTERACTED]-(v:User {id: $n2})-[:INTERACTED]->(i:Item {id: $n3}) RETURN p"
    ),
    SHARED_TAG: (
        "MATCH p = (u:User {id: $n0})-[:INTERACTED]->(j:Item {id: $n1})"
        "-[:HAS_TAG]->(t:Tag {id: $n2})<-[:HAS_TAG]-(i:Item {id: $n3}) RETURN p"
    ),
    FRIEND: (
        "MATCH p = (u:User {id: $n0})-[:FOLLOWS]->(f:User {id: $n1})-[:INTERACTED]->(i:Item {id: $n2}) RETURN p"
    ),
    FRIEND_OF_FRIEND: (
        "MATCH p = (u:User {id: $n0})-[:FOLLOWS]->(f:User {id: $n1})-[:FOLLOWS]->(g:User {id: $n2})"
        "-[:INTERACTED]->(i:Item {id: $n3}) RETURN p"
    ),
    PEER_GROUP: (
        "MATCH p = (u:User {id: $n0})-[:HAS_ATTRIBUTE]->(a:Attribute {id: $n1})"
        "<-[:HAS_ATTRIBUTE]-(v:User {id: $n2})-[:INTERACTED]->(i:Item {id: $n3}) RETURN p"
    ),
    ITEM_TAG: "MATCH p = (i:Item {id: $n0})-[:HAS_TAG]->(t:Tag {id: $n1}) RETURN p",
    NEAR_VISITED: (
        "MATCH p = (u:User {id: $n0})-[:INTERACTED]->(j:Item {id: $n1}) MATCH (i:Item {id: $n2}) "
        "WHERE j.location IS NOT NULL AND i.location IS NOT NULL "
        "RETURN p, i, point.distance(j.location, i.location) / 1000.0 AS km"
    ),
    FRIEND_NEAR: (
        "MATCH p = (u:User {id: $n0})-[:FOLLOWS]->(f:User {id: $n1})-[:INTERACTED]->(j:Item {id: $n2}) "
        "MATCH (i:Item {id: $n3}) WHERE j.location IS NOT NULL AND i.location IS NOT NULL "
        "RETURN p, i, point.distance(j.location, i.location) / 1000.0 AS km"
    ),
    FOLLOWER_NEAR: (
        "MATCH p = (u:User {id: $n0})<-[:FOLLOWS]-(f:User {id: $n1})-[:INTERACTED]->(j:Item {id: $n2}) "
        "MATCH (i:Item {id: $n3}) WHERE j.location IS NOT NULL AND i.location IS NOT NULL "
        "RETURN p, i, point.distance(j.location, i.location) / 1000.0 AS km"
    ),
    ITEM_CO_AUDIENCE: (
        "MATCH p = (a:Item {id: $n0})<-[:INTERACTED]-(u:User {id: $n1})-[:INTERACTED]->(b:Item {id: $n2}) RETURN p"
    ),
    ITEM_SHARED_TAG: (
        "MATCH p = (a:Item {id: $n0})-[:HAS_TAG]->(t:Tag {id: $n1})<-[:HAS_TAG]-(b:Item {id: $n2}) RETURN p"
    ),
}


class PathBuilder:
    """Builds ``Reason``s from snapshot indices, naming nodes as a person would."""

    def __init__(self, snapshot: GraphSnapshot) -> None:
        self.snapshot = snapshot
        self._nodes: dict[tuple[Label, int], PathNode] = {}

    def user(self, u: int) -> PathNode:
        node = self._nodes.get((Label.USER, u))
        if node is None:
            s = self.snapshot
            name = s.user_attrs[u].get("name") if u < len(s.user_attrs) else None
            node = PathNode(Label.USER, s.users.ids[u], str(name) if name is not None else None)
            self._nodes[Label.USER, u] = node
        return node

    def item(self, i: int) -> PathNode:
        node = self._nodes.get((Label.ITEM, i))
        if node is None:
            node = PathNode(Label.ITEM, self.snapshot.items.ids[i], self.snapshot.item_titles[i])
            self._nodes[Label.ITEM, i] = node
        return node

    def tag(self, t: int) -> PathNode:
        node = self._nodes.get((Label.TAG, t))
        if node is None:
            node = PathNode(Label.TAG, self.snapshot.tags.ids[t], self.snapshot.tag_names[t])
            self._nodes[Label.TAG, t] = node
        return node

    def attribute(self, a: int) -> PathNode:
        node = self._nodes.get((Label.ATTRIBUTE, a))
        if node is None:
            s = self.snapshot
            node = PathNode(Label.ATTRIBUTE, s.attributes.ids[a], s.attribute_names[a])
            self._nodes[Label.ATTRIBUTE, a] = node
        return node

    def reason(self, shape: Shape, nodes: tuple[PathNode, ...], contribution: float, text: str,
               kind: str = "cause") -> Reason:
        labels, rels = shape
        if len(nodes) != len(labels) or any(n.label is not lab for n, lab in zip(nodes, labels, strict=False)):
            raise ValueError(f"path nodes {[n.label.value for n in nodes]} do not match shape {labels}")
        return Reason(
            nodes=nodes, rels=rels, contribution=float(contribution), text=text,
            cypher=CYPHER[shape], params={f"n{k}": n.id for k, n in enumerate(nodes)}, kind=kind,
        )

    # -- the common shapes ------------------------------------------------------------------
    def popular(self, i: int, contribution: float, text: str, kind: str = "cause") -> Reason:
        return self.reason(ITEM, (self.item(i),), contribution, text, kind)

    def own_item(self, u: int, j: int, contribution: float, text: str, kind: str = "cause") -> Reason:
        return self.reason(USER_ITEM, (self.user(u), self.item(j)), contribution, text, kind)

    def co_interaction(self, u: int, j: int, v: int, i: int, contribution: float, text: str,
                       kind: str = "cause") -> Reason:
        nodes = (self.user(u), self.item(j), self.user(v), self.item(i))
        return self.reason(CO_INTERACTION, nodes, contribution, text, kind)

    def shared_tag(self, u: int, j: int, t: int, i: int, contribution: float, text: str,
                   kind: str = "cause") -> Reason:
        nodes = (self.user(u), self.item(j), self.tag(t), self.item(i))
        return self.reason(SHARED_TAG, nodes, contribution, text, kind)

    def friend(self, u: int, f: int, i: int, contribution: float, text: str, kind: str = "cause") -> Reason:
        return self.reason(FRIEND, (self.user(u), self.user(f), self.item(i)), contribution, text, kind)

    def near_visited(self, u: int, j: int, i: int, contribution: float, text: str, kind: str = "cause") -> Reason:
        """You visited ``j``, which lies near ``i``."""
        return self.reason(NEAR_VISITED, (self.user(u), self.item(j), self.item(i)), contribution, text, kind)

    def friend_near(self, u: int, f: int, j: int, i: int, contribution: float, text: str,
                    kind: str = "cause") -> Reason:
        """Your friend ``f`` visited ``j``, near ``i``; through the FOLLOWS edge the graph has
        (you follow them, else they follow you)."""
        follows = self.snapshot.follows
        shape = FRIEND_NEAR if follows[u, f] != 0 else FOLLOWER_NEAR
        return self.reason(shape, (self.user(u), self.user(f), self.item(j), self.item(i)), contribution, text, kind)

    def peer_group(self, user: PathNode, a: int, v: int, i: int, contribution: float, text: str,
                   kind: str = "cause") -> Reason:
        """You have attribute ``a``, like user ``v``, who chose ``i``; ``user`` may be a user the
        snapshot does not hold (a newcomer whose attributes the store has)."""
        return self.reason(PEER_GROUP, (user, self.attribute(a), self.user(v), self.item(i)), contribution, text, kind)

    def item_tag(self, i: int, t: int, contribution: float, text: str, kind: str = "evidence") -> Reason:
        return self.reason(ITEM_TAG, (self.item(i), self.tag(t)), contribution, text, kind)

    def item_co_audience(self, a: int, v: int, b: int, contribution: float, text: str,
                         kind: str = "evidence") -> Reason:
        return self.reason(ITEM_CO_AUDIENCE, (self.item(a), self.user(v), self.item(b)), contribution, text, kind)

    def item_shared_tag(self, a: int, t: int, b: int, contribution: float, text: str,
                        kind: str = "evidence") -> Reason:
        return self.reason(ITEM_SHARED_TAG, (self.item(a), self.tag(t), self.item(b)), contribution, text, kind)

    def friend_of_friend(self, u: int, f: int, g: int, i: int, contribution: float, text: str,
                         kind: str = "cause") -> Reason:
        nodes = (self.user(u), self.user(f), self.user(g), self.item(i))
        return self.reason(FRIEND_OF_FRIEND, nodes, contribution, text, kind)


def path_exists(snapshot: GraphSnapshot, reason: Reason) -> bool:
    """Whether every node and every hop of ``reason`` is in the snapshot's graph."""
    index = {Label.USER: snapshot.users, Label.ITEM: snapshot.items, Label.TAG: snapshot.tags,
             Label.ATTRIBUTE: snapshot.attributes}
    idx = []
    for n in reason.nodes:
        if n.label not in index or n.id not in index[n.label]:
            return False
        idx.append(index[n.label].index[n.id])
    matrices = {Rel.INTERACTED: snapshot.interactions, Rel.HAS_TAG: snapshot.item_tags, Rel.FOLLOWS: snapshot.follows,
                Rel.HAS_ATTRIBUTE: snapshot.user_attributes}
    for k, r in enumerate(reason.rels):
        a, b = (idx[k], idx[k + 1]) if r.forward else (idx[k + 1], idx[k])
        if r.type is Derived.NEAR:
            if not (reason.nodes[k].label is Label.ITEM and reason.nodes[k + 1].label is Label.ITEM
                    and _located(snapshot, a) and _located(snapshot, b)):
                return False
        elif not isinstance(r.type, Rel) or r.type not in matrices or matrices[r.type][a, b] == 0:
            return False
    return True


def _located(snapshot: GraphSnapshot, i: int) -> bool:
    """Whether item ``i`` has a location (a NEAR hop joins two located items)."""
    lat, lon = getattr(snapshot, "item_lat", None), getattr(snapshot, "item_lon", None)
    return lat is not None and lon is not None and bool(np.isfinite(lat[i]) and np.isfinite(lon[i]))
