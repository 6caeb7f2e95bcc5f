"""The closed set of labels, relationship types, keys and property names.

Cypher cannot take labels or relationship types as parameters, so every label or type
that ever appears in a query comes from these enums and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum


class Label(StrEnum):
    """Node labels."""

    USER = "User"
    ITEM = "Item"
    TAG = "Tag"
    ENTITY = "Entity"
    #: A value that describes a group of users (``age:25-34``, ``gender:F``, ``region:9``), keyed
    #: ``kind:value``; users link to it with HAS_ATTRIBUTE (rules: ``graph.user_attributes``).
    ATTRIBUTE = "Attribute"
    #: One node (``{id: "serving"}``) holding counters that let API workers notice global
    #: changes (hidden items) with one cheap read; never exported, counted or recommended.
    STATE = "KgrecState"
    #: One item shown to one user in one served list (``graph.impressions``): where, by which
    #: policy and model, with what probability; feedback naming it sets ``chosen_at`` or
    #: ``disliked_at`` once. "Shown but not chosen" is derived (neither set), never written.
    IMPRESSION = "Impression"


class Rel(StrEnum):
    """Relationship types."""

    INTERACTED = "INTERACTED"
    TAGGED = "TAGGED"
    HAS_TAG = "HAS_TAG"
    FOLLOWS = "FOLLOWS"
    RELATED = "RELATED"
    RECOMMENDED = "RECOMMENDED"
    #: Negative feedback: the user does not want the item recommended again.
    DISLIKED = "DISLIKED"
    #: A user belongs to the group an Attribute names; follows the user's attributes (an upsert of
    #: the user replaces its links).
    HAS_ATTRIBUTE = "HAS_ATTRIBUTE"
    #: A user was shown an Impression; the Impression SHOWS one item.
    SAW = "SAW"
    SHOWS = "SHOWS"


#: The key property of each label (a unique constraint in Neo4j).
KEY: dict[Label, str] = {
    Label.USER: "id",
    Label.ITEM: "id",
    Label.TAG: "id",
    Label.ENTITY: "iri",
    Label.ATTRIBUTE: "id",
    Label.STATE: "id",
    Label.IMPRESSION: "id",
}

#: (source label, type, target label) of every relationship type.
ENDPOINTS: dict[Rel, tuple[Label, Label]] = {
    Rel.INTERACTED: (Label.USER, Label.ITEM),
    Rel.TAGGED: (Label.USER, Label.ITEM),
    Rel.HAS_TAG: (Label.ITEM, Label.TAG),
    Rel.FOLLOWS: (Label.USER, Label.USER),
    Rel.RELATED: (Label.ITEM, Label.ENTITY),
    Rel.RECOMMENDED: (Label.USER, Label.ITEM),
    Rel.DISLIKED: (Label.USER, Label.ITEM),
    Rel.HAS_ATTRIBUTE: (Label.USER, Label.ATTRIBUTE),
    Rel.SAW: (Label.USER, Label.IMPRESSION),
    Rel.SHOWS: (Label.IMPRESSION, Label.ITEM),
}

#: Property names each element may carry (besides free-form user/item attributes).
PROPERTIES: dict[Label | Rel, tuple[str, ...]] = {
    Label.USER: ("id", "rev"),
    Label.ITEM: ("id", "title", "hidden", "location"),
    Label.TAG: ("id", "name", "kind"),
    Label.ENTITY: ("iri", "label"),
    Label.ATTRIBUTE: ("id", "kind", "value", "name"),
    Label.STATE: ("id", "hidden_rev"),
    Label.IMPRESSION: ("id", "request", "user", "item", "position", "at", "policy", "model", "source", "propensity",
                       "score", "explored", "eps", "tau", "protect", "pool", "pool_logits", "chosen_at", "disliked_at"),
    Rel.INTERACTED: ("weight", "rating", "ts"),
    Rel.TAGGED: ("tag", "ts"),
    Rel.HAS_TAG: ("count",),
    Rel.FOLLOWS: ("weight",),
    Rel.RELATED: ("predicate",),
    Rel.RECOMMENDED: ("model", "score", "rank", "at"),
    Rel.DISLIKED: ("ts",),
    Rel.HAS_ATTRIBUTE: (),
    Rel.SAW: (),
    Rel.SHOWS: (),
}

#: ``User.rev`` is bumped by every write that changes the user's INTERACTED, DISLIKED or
#: HAS_ATTRIBUTE relationships (an upsert of the user replaces its HAS_ATTRIBUTE links), and
#: ``KgrecState.hidden_rev`` by every change of an item's ``hidden`` flag,
#: so a server can tell with one small read whether what it cached is still current.
USER_REV = "rev"
HIDDEN_REV = "hidden_rev"
STATE_ID = "serving"

#: ``Item.location``: where an item is, a WGS-84 ``point`` in Neo4j (with a point index, for
#: ``point.distance`` and ``point.withinBBox``), ``(lat, lon)`` in degrees everywhere else.
LOCATION = "location"

#: Prefix of free-form attribute properties on users and items (``attr_age``), so that
#: they can never collide with the reserved names above.
ATTR_PREFIX = "attr_"

#: Node property holding a written-back embedding vector, by model name: ``emb_<model>``.
EMBEDDING_PREFIX = "emb_"


def label(name: str) -> Label:
    """Parse a label name, refusing anything outside the closed set."""
    try:
        return Label(name)
    except ValueError as exc:
        raise ValueError(f"unknown label {name!r}; expected one of {[x.value for x in Label]}") from exc


def rel(name: str) -> Rel:
    """Parse a relationship type name, refusing anything outside the closed set."""
    try:
        return Rel(name)
    except ValueError as exc:
        raise ValueError(f"unknown relationship type {name!r}; expected one of {[x.value for x in Rel]}") from exc


#: What the graph holds, by kind: the keys of ``GraphStore.counts()``, of ``GraphRecords``' lists
#: and of ``kgrec stats --json``. Whole-graph writes go in this order: nodes before the
#: relationships that name them, users before their HAS_ATTRIBUTE links.
COUNT_KEYS = ("users", "items", "tags", "attributes", "interactions", "taggings", "item_tags", "follows", "facts",
              "dislikes", "has_attribute")
