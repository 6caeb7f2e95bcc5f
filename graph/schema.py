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


class Rel(StrEnum):
    """Relationship types."""

    INTERACTED = "INTERACTED"
    TAGGED = "TAGGED"
    HAS_TAG = "HAS_TAG"
    FOLLOWS = "FOLLOWS"
    RELATED = "RELATED"
    RECOMMENDED = "RECOMMENDED"


#: The key property of each label (a unique constraint in Neo4j).
KEY: dict[Label, str] = {
    Label.USER: "id",
    Label.ITEM: "id",
    Label.TAG: "id",
    Label.ENTITY: "iri",
}

#: (source label, type, target label) of every relationship type.
ENDPOINTS: dict[Rel, tuple[Label, Label]] = {
    Rel.INTERACTED: (Label.USER, Label.ITEM),
    Rel.TAGGED: (Label.USER, Label.ITEM),
    Rel.HAS_TAG: (Label.ITEM, Label.TAG),
    Rel.FOLLOWS: (Label.USER, Label.USER),
    Rel.RELATED: (Label.ITEM, Label.ENTITY),
    Rel.RECOMMENDED: (Label.USER, Label.ITEM),
}

#: Property names each element may carry (besides free-form user/item attributes).
PROPERTIES: dict[Label | Rel, tuple[str, ...]] = {
    Label.USER: ("id",),
    Label.ITEM: ("id", "title"),
    Label.TAG: ("id", "name", "kind"),
    Label.ENTITY: ("iri", "label"),
    Rel.INTERACTED: ("weight", "rating", "ts"),
    Rel.TAGGED: ("tag", "ts"),
    Rel.HAS_TAG: ("count",),
    Rel.FOLLOWS: ("weight",),
    Rel.RELATED: ("predicate",),
    Rel.RECOMMENDED: ("model", "score", "rank", "at"),
}

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
