"""Plain records that flow from loaders into stores and from stores into snapshots.

They are the one vocabulary every store speaks, so that the same data gives the same
graph (and the same snapshot fingerprint) whichever store holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AttrValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class User:
    id: str
    attrs: dict[str, AttrValue] = field(default_factory=dict, hash=False, compare=True)


@dataclass(frozen=True, slots=True)
class Item:
    """``location`` is ``(lat, lon)`` in WGS-84 degrees (``graph.values.location_problem``), or None."""

    id: str
    title: str | None = None
    attrs: dict[str, AttrValue] = field(default_factory=dict, hash=False, compare=True)
    location: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Tag:
    id: str
    name: str
    kind: str = "tag"


@dataclass(frozen=True, slots=True)
class Attribute:
    """(:Attribute {id, kind, value, name}): a group of users, keyed ``kind:value`` (``age:25-34``).
    ``kind``, ``value`` and ``name`` may be None for a node only named by links (then read as the
    parts of its id); see ``graph.user_attributes``."""

    id: str
    kind: str | None = None
    value: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class UserAttribute:
    """(:User)-[:HAS_ATTRIBUTE]->(:Attribute); one per (user, attribute)."""

    user: str
    attribute: str


@dataclass(frozen=True, slots=True)
class Interaction:
    """(:User)-[:INTERACTED {weight, rating, ts}]->(:Item); one per (user, item)."""

    user: str
    item: str
    weight: float = 1.0
    rating: float | None = None
    ts: int | None = None


@dataclass(frozen=True, slots=True)
class Tagging:
    """(:User)-[:TAGGED {tag, ts}]->(:Item); one per (user, item, tag)."""

    user: str
    item: str
    tag: str
    ts: int | None = None


@dataclass(frozen=True, slots=True)
class ItemTag:
    """(:Item)-[:HAS_TAG {count}]->(:Tag); one per (item, tag)."""

    item: str
    tag: str
    count: float = 1.0


@dataclass(frozen=True, slots=True)
class Follow:
    """(:User)-[:FOLLOWS {weight}]->(:User); one per directed pair."""

    user: str
    friend: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Fact:
    """(:Item)-[:RELATED {predicate}]->(:Entity {iri, label}); one per triple."""

    item: str
    predicate: str
    entity: str
    entity_label: str | None = None


@dataclass(frozen=True, slots=True)
class Dislike:
    """(:User)-[:DISLIKED {ts}]->(:Item); one per (user, item): never recommend it to them again."""

    user: str
    item: str
    ts: int | None = None


@dataclass
class GraphRecords:
    """A whole graph as lists of records: what loaders produce and stores export."""

    users: list[User] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)
    taggings: list[Tagging] = field(default_factory=list)
    item_tags: list[ItemTag] = field(default_factory=list)
    follows: list[Follow] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    dislikes: list[Dislike] = field(default_factory=list)
    #: HAS_ATTRIBUTE links; written after ``users``, whose upsert replaces a user's links.
    has_attribute: list[UserAttribute] = field(default_factory=list)
    #: Ids of items flagged ``hidden`` (never recommended nor listed as similar).
    hidden: list[str] = field(default_factory=list)

