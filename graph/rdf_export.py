"""The graph as RDF: every node and relationship as triples, written in bounded chunks.

Relationships that carry properties (weight, rating, ts, count) are written as qualified n-ary
nodes (``kg:Interaction``, ``kg:Tagging``, ``kg:ItemTag``, ``kg:Follow``, ``kg:Dislike``) so
nothing is lost without RDF-star; facts are plain triples ``<item> <predicate> <entity>``, and
so are a user's attribute links (``<user> kg:hasAttribute <attribute>``, to ``kg:Attribute``
nodes with ``kg:kind``, ``kg:value``, ``kg:name``). An item's location is ``geo:lat`` and
``geo:long`` (W3C WGS84 Basic Geo vocabulary).
The vocabulary is ``graph.rdf_terms``; ``graph.rdf_import`` reads it back.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from rdflib import RDF, RDFS, Graph, Literal, URIRef
from rdflib.term import Node

from kgrec.graph.rdf_terms import (
    EXPORT_FORMATS,
    FORMATS,
    GEO,
    ID_BASE,
    KG,
    node_iri,
    number_literal,
    predicate_iri,
    quote_key,
    value_literal,
)
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import Label
from kgrec.graph.store import GraphStore


def triples(records: GraphRecords) -> Iterator[tuple[Node, Node, Node]]:
    """Every triple of the graph, node by node and relationship by relationship."""

    def user(key: str) -> URIRef:
        return node_iri(Label.USER, key)

    def item(key: str) -> URIRef:
        return node_iri(Label.ITEM, key)

    def tag(key: str) -> URIRef:
        return node_iri(Label.TAG, key)

    def attrs(subject: URIRef, values: dict[str, Any]) -> Iterator[tuple[Node, Node, Node]]:
        for key, value in values.items():
            a = URIRef(f"{subject}/attr/{quote_key(key)}")
            yield subject, KG.attribute, a
            yield a, KG.key, Literal(key)
            yield a, KG.value, value_literal(value)

    hidden = set(records.hidden)
    for u in records.users:
        s = user(u.id)
        yield s, RDF.type, KG.User
        yield s, KG.id, Literal(u.id)
        yield from attrs(s, u.attrs)
    for i in records.items:
        s = item(i.id)
        yield s, RDF.type, KG.Item
        yield s, KG.id, Literal(i.id)
        if i.title is not None:
            yield s, KG["title"], Literal(i.title)
        if i.id in hidden:
            yield s, KG.hidden, Literal(True)
        if i.location is not None:
            yield s, GEO.lat, number_literal(i.location[0])
            yield s, GEO.long, number_literal(i.location[1])
        yield from attrs(s, i.attrs)
    for t in records.tags:
        s = tag(t.id)
        yield s, RDF.type, KG.Tag
        yield s, KG.id, Literal(t.id)
        yield s, KG.name, Literal(t.name)
        yield s, KG.kind, Literal(t.kind)
    for a in records.attributes:
        s = node_iri(Label.ATTRIBUTE, a.id)
        yield s, RDF.type, KG.Attribute
        yield s, KG.id, Literal(a.id)
        for prop, value in ((KG.kind, a.kind), (KG.value, a.value), (KG.name, a.name)):
            if value is not None:
                yield s, prop, Literal(value)
    for link in records.has_attribute:
        yield user(link.user), KG.hasAttribute, node_iri(Label.ATTRIBUTE, link.attribute)
    for r in records.interactions:
        s = URIRef(f"{ID_BASE}interaction/{quote_key(r.user)}/{quote_key(r.item)}")
        yield s, RDF.type, KG.Interaction
        yield s, KG.user, user(r.user)
        yield s, KG.item, item(r.item)
        yield s, KG.weight, number_literal(r.weight)
        if r.rating is not None:
            yield s, KG.rating, number_literal(r.rating)
        if r.ts is not None:
            yield s, KG.ts, number_literal(r.ts)
    for tg in records.taggings:
        s = URIRef(f"{ID_BASE}tagging/{quote_key(tg.user)}/{quote_key(tg.item)}/{quote_key(tg.tag)}")
        yield s, RDF.type, KG.Tagging
        yield s, KG.user, user(tg.user)
        yield s, KG.item, item(tg.item)
        yield s, KG.tag, tag(tg.tag)
        if tg.ts is not None:
            yield s, KG.ts, number_literal(tg.ts)
    for it in records.item_tags:
        s = URIRef(f"{ID_BASE}item-tag/{quote_key(it.item)}/{quote_key(it.tag)}")
        yield s, RDF.type, KG.ItemTag
        yield s, KG.item, item(it.item)
        yield s, KG.tag, tag(it.tag)
        yield s, KG["count"], number_literal(it.count)
    for fo in records.follows:
        s = URIRef(f"{ID_BASE}follow/{quote_key(fo.user)}/{quote_key(fo.friend)}")
        yield s, RDF.type, KG.Follow
        yield s, KG.user, user(fo.user)
        yield s, KG.friend, user(fo.friend)
        yield s, KG.weight, number_literal(fo.weight)
    for dl in records.dislikes:
        s = URIRef(f"{ID_BASE}dislike/{quote_key(dl.user)}/{quote_key(dl.item)}")
        yield s, RDF.type, KG.Dislike
        yield s, KG.user, user(dl.user)
        yield s, KG.item, item(dl.item)
        if dl.ts is not None:
            yield s, KG.ts, number_literal(dl.ts)
    labels: dict[str, str | None] = {}
    for f in records.facts:  # the last label given wins, as in build_snapshot
        if f.entity_label is not None or f.entity not in labels:
            labels[f.entity] = f.entity_label
    for key, label in labels.items():
        e = node_iri(Label.ENTITY, key)
        yield e, RDF.type, KG.Entity
        yield e, KG.iri, Literal(key)
        if label is not None:
            yield e, RDFS.label, Literal(label)
    for f in records.facts:
        yield item(f.item), predicate_iri(f.predicate), node_iri(Label.ENTITY, f.entity)


def export_rdf(
    store: GraphStore, destination: str | Path | IO[bytes], fmt: str = "ttl",
    progress: Callable[[int], None] | None = None, chunk: int = 200_000,
) -> int:
    """Serialize the whole store; returns the number of triples written.

    Triples go out in chunks of ``chunk``, each serialized on its own: concatenated N-Triples
    or Turtle documents (Turtle allows repeated prefixes and subjects) form one valid document,
    so memory stays bounded by the chunk instead of the whole graph.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {EXPORT_FORMATS}")
    records = store.export()
    with contextlib.ExitStack() as stack:
        out = destination if not isinstance(destination, str | Path) else stack.enter_context(
            open(destination, "wb"))
        written = 0
        stream = triples(records)
        while batch := list(itertools.islice(stream, chunk)):
            g = Graph()
            g.bind("kg", KG)
            g.addN((s, p, o, g) for s, p, o in batch)
            out.write(g.serialize(format=FORMATS[fmt], encoding="utf-8"))
            written += len(g)
            if progress:
                progress(len(g))
    return written
