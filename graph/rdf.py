"""The graph as RDF (rdflib): a lossless export/import, and third-party facts about items.

Vocabulary: classes and properties live in ``https://kgrec.dev/ns#`` (prefix ``kg:``); nodes
get IRIs under ``https://kgrec.dev/id/<kind>/<url-quoted id>``. Relationships that carry
properties (weight, rating, ts, count) are written as qualified n-ary nodes
(``kg:Interaction``, ``kg:Tagging``, ``kg:ItemTag``, ``kg:Follow``) so nothing is lost without
RDF-star; facts are plain triples ``<item> <predicate> <entity>``. Floats are written as exact
``xsd:decimal`` lexical forms, because rdflib's Turtle writer rounds ``xsd:double`` to 7 digits.

Importing a kgrec export gives back an equal graph (same snapshot fingerprint). Any other
triple whose subject is a known item — a kgrec item IRI, an IRI under a given item prefix, or
one tied to an item by ``owl:sameAs`` — and whose object is an IRI becomes a Fact, and an
``rdfs:label`` of such an entity becomes its label. Every other triple is reported with a
reason, never silently dropped.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote

from rdflib import OWL, RDF, RDFS, XSD, Graph, Literal, Namespace, URIRef
from rdflib.term import Node

from graph.records import (
    Dislike,
    Fact,
    Follow,
    GraphRecords,
    Interaction,
    Item,
    ItemTag,
    Tag,
    Tagging,
    User,
)
from graph.schema import Label
from graph.store import GraphStore, StoreError

KG = Namespace("https://kgrec.dev/ns#")
ID_BASE = "https://kgrec.dev/id/"
#: Fact predicates that are not absolute IRIs are minted here (and unquoted on import).
PREDICATE_BASE = "https://kgrec.dev/ns/predicate/"

#: CLI format names -> rdflib parser/serializer names.
FORMATS = {"ttl": "turtle", "nt": "nt", "xml": "xml", "jsonld": "json-ld", "n3": "n3", "trig": "trig"}
EXPORT_FORMATS = ("ttl", "nt")

_KIND = {Label.USER: "user", Label.ITEM: "item", Label.TAG: "tag", Label.ENTITY: "entity"}
_CLASS = {Label.USER: KG.User, Label.ITEM: KG.Item, Label.TAG: KG.Tag, Label.ENTITY: KG.Entity}
_ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_EXAMPLES_PER_REASON = 5


def _q(key: str) -> str:
    return quote(key, safe="")


def node_iri(label: Label, key: str) -> URIRef:
    """The IRI of a node: entities keep their own IRI when it is one, everything else is minted."""
    if label is Label.ENTITY and _ABSOLUTE_IRI.match(key):
        return URIRef(key)
    return URIRef(f"{ID_BASE}{_KIND[label]}/{_q(key)}")


def predicate_iri(predicate: str) -> URIRef:
    return URIRef(predicate if _ABSOLUTE_IRI.match(predicate) else PREDICATE_BASE + _q(predicate))


def _number(value: float | int) -> Literal:
    """Exact literal for a number (xsd:decimal from ``repr``; rdflib rounds xsd:double in Turtle)."""
    if isinstance(value, bool):
        return Literal(value)
    if isinstance(value, int):
        return Literal(value, datatype=XSD.integer)
    if not math.isfinite(value):
        return Literal(str(value).replace("inf", "INF").replace("nan", "NaN"), datatype=XSD.double)
    return Literal(format(Decimal(repr(float(value))), "f"), datatype=XSD.decimal)


def _value(value: Any) -> Literal:
    return _number(value) if isinstance(value, int | float) else Literal(str(value))


def _python(term: Node) -> Any:
    """A literal's Python value; decimals back to float (they were floats when written)."""
    value = term.toPython() if isinstance(term, Literal) else term
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Literal):  # an ill-typed literal rdflib could not convert
        return str(value)
    return value


# -- export -----------------------------------------------------------------------------
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
            a = URIRef(f"{subject}/attr/{_q(key)}")
            yield subject, KG.attribute, a
            yield a, KG.key, Literal(key)
            yield a, KG.value, _value(value)

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
        yield from attrs(s, i.attrs)
    for t in records.tags:
        s = tag(t.id)
        yield s, RDF.type, KG.Tag
        yield s, KG.id, Literal(t.id)
        yield s, KG.name, Literal(t.name)
        yield s, KG.kind, Literal(t.kind)
    for r in records.interactions:
        s = URIRef(f"{ID_BASE}interaction/{_q(r.user)}/{_q(r.item)}")
        yield s, RDF.type, KG.Interaction
        yield s, KG.user, user(r.user)
        yield s, KG.item, item(r.item)
        yield s, KG.weight, _number(r.weight)
        if r.rating is not None:
            yield s, KG.rating, _number(r.rating)
        if r.ts is not None:
            yield s, KG.ts, _number(r.ts)
    for r in records.taggings:
        s = URIRef(f"{ID_BASE}tagging/{_q(r.user)}/{_q(r.item)}/{_q(r.tag)}")
        yield s, RDF.type, KG.Tagging
        yield s, KG.user, user(r.user)
        yield s, KG.item, item(r.item)
        yield s, KG.tag, tag(r.tag)
        if r.ts is not None:
            yield s, KG.ts, _number(r.ts)
    for r in records.item_tags:
        s = URIRef(f"{ID_BASE}item-tag/{_q(r.item)}/{_q(r.tag)}")
        yield s, RDF.type, KG.ItemTag
        yield s, KG.item, item(r.item)
        yield s, KG.tag, tag(r.tag)
        yield s, KG["count"], _number(r.count)
    for r in records.follows:
        s = URIRef(f"{ID_BASE}follow/{_q(r.user)}/{_q(r.friend)}")
        yield s, RDF.type, KG.Follow
        yield s, KG.user, user(r.user)
        yield s, KG.friend, user(r.friend)
        yield s, KG.weight, _number(r.weight)
    for r in records.dislikes:
        s = URIRef(f"{ID_BASE}dislike/{_q(r.user)}/{_q(r.item)}")
        yield s, RDF.type, KG.Dislike
        yield s, KG.user, user(r.user)
        yield s, KG.item, item(r.item)
        if r.ts is not None:
            yield s, KG.ts, _number(r.ts)
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


def to_graph(records: GraphRecords) -> Graph:
    """An rdflib Graph of ``records`` with the ``kg:`` prefix bound."""
    g = Graph()
    g.bind("kg", KG)
    g.addN((s, p, o, g) for s, p, o in triples(records))
    return g


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


# -- import -----------------------------------------------------------------------------
@dataclass
class RdfImport:
    """What an RDF file became: records to write, and every triple that could not be mapped."""

    records: GraphRecords
    triples: int
    unmapped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def reject(self, reason: str, triple: tuple[Node, Node, Node]) -> None:
        self.unmapped[reason] += 1
        if len(self.examples[reason]) < _EXAMPLES_PER_REASON:
            self.examples[reason].append(" ".join(t.n3() for t in triple))

    @property
    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in vars(self.records).items()}


def _is_kg(term: Node) -> bool:
    return isinstance(term, URIRef) and str(term).startswith(str(KG))


def _minted(term: Node, kind: str) -> str | None:
    prefix = f"{ID_BASE}{kind}/"
    if isinstance(term, URIRef) and str(term).startswith(prefix):
        return unquote(str(term)[len(prefix) :])
    return None


def _label_of(g: Graph, term: Node) -> str | None:
    """A deterministic rdfs:label: untagged or English first, then the smallest."""
    labels = [x for x in g.objects(term, RDFS.label) if isinstance(x, Literal)]
    if not labels:
        return None
    labels.sort(key=lambda x: (x.language not in (None, "en"), str(x)))
    return str(labels[0])


class _Reader:
    """Reads a parsed graph: kgrec nodes and relationships first, then third-party facts."""

    def __init__(self, g: Graph, item_exists: Callable[[str], bool], item_prefixes: Sequence[str]) -> None:
        self.g = g
        self.item_exists = item_exists
        self.item_prefixes = tuple(p for p in item_prefixes if p)
        self.out = RdfImport(GraphRecords(), len(g))
        self.declared: dict[Label, dict[Node, str]] = {lab: {} for lab in Label}
        for label, cls in _CLASS.items():
            key_prop = KG.iri if label is Label.ENTITY else KG.id
            for s in g.subjects(RDF.type, cls):
                key = g.value(s, key_prop)
                self.declared[label][s] = str(key) if key is not None else self._fallback_key(label, s)
        self.owned: set[Node] = {s for nodes in self.declared.values() for s in nodes}
        for cls in (KG.Interaction, KG.Tagging, KG.ItemTag, KG.Follow, KG.Dislike):
            self.owned.update(g.subjects(RDF.type, cls))
        for label in (Label.USER, Label.ITEM):
            for s in self.declared[label]:
                self.owned.update(g.objects(s, KG.attribute))
        self.same_as: dict[Node, str] = {}
        self.declared_items = set(self.declared[Label.ITEM].values())
        self._known: dict[str, bool] = {}

    @staticmethod
    def _fallback_key(label: Label, term: Node) -> str:
        return _minted(term, _KIND[label]) or str(term)

    def node(self, label: Label, term: Node) -> str | None:
        """The key of a kgrec node reference (declared in the file, or a minted IRI)."""
        if term in self.declared[label]:
            return self.declared[label][term]
        return _minted(term, _KIND[label])

    def _item_known(self, key: str) -> bool:
        if key not in self._known:
            self._known[key] = key in self.declared_items or self.item_exists(key)
        return self._known[key]

    def item_of(self, term: Node, follow_same_as: bool = True) -> str | None:
        """The item a subject IRI stands for, or None."""
        if term in self.declared[Label.ITEM]:
            return self.declared[Label.ITEM][term]
        key = _minted(term, "item")
        if key is None and isinstance(term, URIRef):
            for prefix in self.item_prefixes:
                if str(term).startswith(prefix) and len(str(term)) > len(prefix):
                    key = unquote(str(term)[len(prefix) :])
                    break
        if key is not None:
            return key if self._item_known(key) else None
        return self.same_as.get(term) if follow_same_as else None

    def read(self) -> RdfImport:
        g, out, rec = self.g, self.out, self.out.records
        for a, b in g.subject_objects(OWL.sameAs):
            item = self.item_of(a, False)
            if item is not None:
                self.same_as.setdefault(b, item)
            elif (item := self.item_of(b, False)) is not None:
                self.same_as.setdefault(a, item)
        for s, key in self.declared[Label.USER].items():
            rec.users.append(User(key, self._attrs(s)))
        for s, key in self.declared[Label.ITEM].items():
            title = g.value(s, KG["title"])
            rec.items.append(Item(key, None if title is None else str(title), self._attrs(s)))
            if _python(g.value(s, KG.hidden) or Literal(False)) is True:
                rec.hidden.append(key)
        for s, key in self.declared[Label.TAG].items():
            name, kind = g.value(s, KG.name), g.value(s, KG.kind)
            rec.tags.append(Tag(key, key if name is None else str(name), "tag" if kind is None else str(kind)))
        self._relationships()
        entities: set[Node] = set(self.declared[Label.ENTITY])
        labels: list[tuple[Node, Node, Node]] = []
        for s, p, o in g:
            if _is_kg(p) or (p == RDF.type and _is_kg(o)):
                if s not in self.owned:
                    out.reject("kgrec vocabulary on a node that is not a declared kgrec node", (s, p, o))
                continue
            if p == RDFS.label:
                labels.append((s, p, o))
                continue
            if p == OWL.sameAs and (o in self.same_as or s in self.same_as):
                continue
            item = self.item_of(s)
            if item is None:
                reason = "owl:sameAs between nodes that are not known items" if p == OWL.sameAs else (
                    "subject is not a known item")
                out.reject(reason, (s, p, o))
            elif not isinstance(o, URIRef):
                out.reject("object is a literal or blank node, not an entity IRI", (s, p, o))
            else:
                entity = self.node(Label.ENTITY, o) or str(o)
                predicate = unquote(str(p)[len(PREDICATE_BASE) :]) if str(p).startswith(PREDICATE_BASE) else str(p)
                rec.facts.append(Fact(item, predicate, entity, _label_of(g, o)))
                entities.add(o)
        for triple in labels:
            if triple[0] not in entities:
                out.reject("rdfs:label of a node that is not the entity of a fact", triple)
        return out

    def _attrs(self, subject: Node) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for a in self.g.objects(subject, KG.attribute):
            key, value = self.g.value(a, KG.key), self.g.value(a, KG.value)
            if key is None or value is None:
                self.out.reject("attribute without kg:key or kg:value", (subject, KG.attribute, a))
                continue
            parsed = _python(value)  # dates, durations, ... are kept as their lexical form
            values[str(key)] = parsed if isinstance(parsed, str | int | float | bool) else str(value)
        return values

    def _relationships(self) -> None:
        g, rec = self.g, self.out.records

        def ref(s: Node, prop: URIRef, label: Label) -> str | None:
            value = g.value(s, prop)
            return None if value is None else self.node(label, value)

        def num(s: Node, prop: URIRef, default: Any, kind: str) -> Any:
            """A checked number (``positive``, ``finite`` or ``int``); raises _Bad to reject the node."""
            term = g.value(s, prop)
            if term is None:
                return default
            value = _python(term)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if kind == "int":
                ok = ok and isinstance(value, int)
            elif kind == "positive":
                ok = ok and value > 0
            if not ok:
                wanted = {"int": "an integer", "positive": "a positive number", "finite": "a finite number"}[kind]
                raise _Bad(f"{prop.n3(g.namespace_manager)} is not {wanted}", (s, prop, term))
            return value

        def each(cls: URIRef, props: tuple[tuple[URIRef, Label], ...]) -> Iterator[tuple[Node, list[str]]]:
            for s in g.subjects(RDF.type, cls):
                keys = [ref(s, prop, label) for prop, label in props]
                if any(k is None for k in keys):
                    names = " and ".join(prop.n3(g.namespace_manager) for prop, _ in props)
                    self.out.reject(f"{cls.n3(g.namespace_manager)} without {names}", (s, RDF.type, cls))
                    continue
                yield s, [k for k in keys if k is not None]

        @contextlib.contextmanager
        def reported() -> Iterator[None]:
            try:
                yield
            except _Bad as bad:
                self.out.reject(bad.reason, bad.triple)

        user, item, tag = (KG.user, Label.USER), (KG.item, Label.ITEM), (KG.tag, Label.TAG)
        for s, (u, i) in each(KG.Interaction, (user, item)):
            with reported():
                weight, rating = num(s, KG.weight, 1.0, "positive"), num(s, KG.rating, None, "finite")
                rec.interactions.append(Interaction(u, i, weight, rating, num(s, KG.ts, None, "int")))
        for s, (u, i, t) in each(KG.Tagging, (user, item, tag)):
            with reported():
                rec.taggings.append(Tagging(u, i, t, num(s, KG.ts, None, "int")))
        for s, (i, t) in each(KG.ItemTag, (item, tag)):
            with reported():
                rec.item_tags.append(ItemTag(i, t, num(s, KG["count"], 1.0, "positive")))
        for s, (u, f) in each(KG.Follow, (user, (KG.friend, Label.USER))):
            with reported():
                rec.follows.append(Follow(u, f, num(s, KG.weight, 1.0, "positive")))
        for s, (u, i) in each(KG.Dislike, (user, item)):
            with reported():
                rec.dislikes.append(Dislike(u, i, num(s, KG.ts, None, "int")))


class _Bad(ValueError):
    """A qualified node with an unusable value: it is reported, not imported."""

    def __init__(self, reason: str, triple: tuple[Node, Node, Node]) -> None:
        super().__init__(reason)
        self.reason, self.triple = reason, triple


def read_graph(
    g: Graph, item_exists: Callable[[str], bool] = lambda _: False, item_prefixes: Iterable[str] = ()
) -> RdfImport:
    """Map a parsed graph to records; ``item_exists`` says which item ids the target store holds."""
    return _Reader(g, item_exists, list(item_prefixes)).read()


def parse(source: str | Path | IO[bytes], fmt: str | None = None) -> Graph:
    """Parse an RDF file; the format comes from ``fmt`` or the file extension."""
    from rdflib.util import guess_format

    name = str(source) if isinstance(source, str | Path) else getattr(source, "name", "")
    rdflib_fmt = FORMATS.get(fmt) if fmt else guess_format(name)
    if rdflib_fmt is None:
        raise StoreError(f"cannot tell the RDF format of {name or 'the input'!r}; pass --format ({', '.join(FORMATS)})")
    g = Graph()
    try:
        g.parse(source=str(source) if isinstance(source, Path) else source, format=rdflib_fmt)
    except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"{name or 'input'}: not valid {rdflib_fmt}: {exc}") from exc
    except Exception as exc:  # rdflib parsers raise their own exception types (BadSyntax, ParserError)
        if type(exc).__module__.startswith("rdflib"):
            raise StoreError(f"{name or 'input'}: not valid {rdflib_fmt}: {exc}") from exc
        raise
    return g


def import_rdf(
    store: GraphStore, source: str | Path | IO[bytes], fmt: str | None = None, item_prefixes: Iterable[str] = ()
) -> RdfImport:
    """Parse ``source`` and upsert what it maps to; unmapped triples are in the result."""
    result = read_graph(parse(source, fmt), lambda key: store.get_node(Label.ITEM, key) is not None, item_prefixes)
    store.load(result.records)
    return result
