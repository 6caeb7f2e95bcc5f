"""RDF into the graph: a kgrec export back losslessly, and third-party facts about items.

Importing a kgrec export (``graph.rdf_export``) gives back an equal graph (same snapshot
fingerprint). Any other triple whose subject is a known item — a kgrec item IRI, an IRI under a
given item prefix, or one tied to an item by ``owl:sameAs`` — and whose object is an IRI
becomes a Fact, and an ``rdfs:label`` of such an entity becomes its label. Every other triple
is reported with a reason, never silently dropped.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

from rdflib import OWL, RDF, RDFS, Graph, Literal, URIRef
from rdflib.term import Node

from kgrec.graph import records as rec
from kgrec.graph.rdf_terms import FORMATS, GEO, ID_BASE, KG, NODE_CLASS, NODE_KIND, PREDICATE_BASE, python_value
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import Label
from kgrec.graph.store import GraphStore
from kgrec.graph.store_errors import StoreError
from kgrec.graph.values import location_problem

_EXAMPLES_PER_REASON = 5


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
        for label, cls in NODE_CLASS.items():
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
        return _minted(term, NODE_KIND[label]) or str(term)

    def node(self, label: Label, term: Node) -> str | None:
        """The key of a kgrec node reference (declared in the file, or a minted IRI)."""
        if term in self.declared[label]:
            return self.declared[label][term]
        return _minted(term, NODE_KIND[label])

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
        g, out, got = self.g, self.out, self.out.records
        for a, b in g.subject_objects(OWL.sameAs):
            item = self.item_of(a, False)
            if item is not None:
                self.same_as.setdefault(b, item)
            elif (item := self.item_of(b, False)) is not None:
                self.same_as.setdefault(a, item)
        for s, key in self.declared[Label.USER].items():
            got.users.append(rec.User(key, self._attrs(s)))
        for s, key in self.declared[Label.ITEM].items():
            title = g.value(s, KG["title"])
            got.items.append(rec.Item(key, None if title is None else str(title), self._attrs(s), self._location(s)))
            if python_value(g.value(s, KG.hidden) or Literal(False)) is True:
                got.hidden.append(key)
        for s, key in self.declared[Label.TAG].items():
            name, kind = g.value(s, KG.name), g.value(s, KG.kind)
            got.tags.append(rec.Tag(key, key if name is None else str(name), "tag" if kind is None else str(kind)))
        for s, key in self.declared[Label.ATTRIBUTE].items():
            kind, value, name = (g.value(s, p) for p in (KG.kind, KG.value, KG.name))
            got.attributes.append(rec.Attribute(key, *(None if x is None else str(x) for x in (kind, value, name))))
        for s, key in self.declared[Label.USER].items():
            for o in g.objects(s, KG.hasAttribute):
                attribute = self.node(Label.ATTRIBUTE, o)
                if attribute is None:
                    out.reject("kg:hasAttribute of something that is not a kgrec attribute", (s, KG.hasAttribute, o))
                else:
                    got.has_attribute.append(rec.UserAttribute(key, attribute))
        self._relationships()
        entities: set[Node] = set(self.declared[Label.ENTITY])
        labels: list[tuple[Node, Node, Node]] = []
        for s, p, o in g:
            if p in (GEO.lat, GEO.long) and s in self.declared[Label.ITEM]:
                continue  # read with the item (_location)
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
                got.facts.append(rec.Fact(item, predicate, entity, _label_of(g, o)))
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
            parsed = python_value(value)  # dates, durations, ... are kept as their lexical form
            values[str(key)] = parsed if isinstance(parsed, str | int | float | bool) else str(value)
        return values

    def _location(self, subject: Node) -> tuple[float, float] | None:
        """An item's geo:lat / geo:long, or None; a lone or out-of-range coordinate is reported."""
        lat, lon = self.g.value(subject, GEO.lat), self.g.value(subject, GEO.long)
        if lat is None and lon is None:
            return None
        y, x = (None if t is None else python_value(t) for t in (lat, lon))
        problem = "needs both geo:lat and geo:long" if lat is None or lon is None else location_problem((y, x))
        if problem is not None:
            prop, term = (GEO.lat, lat) if lat is not None else (GEO.long, lon)
            self.out.reject(f"item location {problem}", (subject, prop, term if term is not None else Literal("")))
            return None
        return (float(y or 0.0), float(x or 0.0))  # both numbers: location_problem checked them

    def _relationships(self) -> None:
        g, got = self.g, self.out.records

        def ref(s: Node, prop: URIRef, label: Label) -> str | None:
            value = g.value(s, prop)
            return None if value is None else self.node(label, value)

        def num(s: Node, prop: URIRef, default: Any, kind: str) -> Any:
            """A checked number (``positive``, ``finite`` or ``int``); raises _Bad to reject the node."""
            term = g.value(s, prop)
            if term is None:
                return default
            value = python_value(term)
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
                got.interactions.append(rec.Interaction(u, i, weight, rating, num(s, KG.ts, None, "int")))
        for s, (u, i, t) in each(KG.Tagging, (user, item, tag)):
            with reported():
                got.taggings.append(rec.Tagging(u, i, t, num(s, KG.ts, None, "int")))
        for s, (i, t) in each(KG.ItemTag, (item, tag)):
            with reported():
                got.item_tags.append(rec.ItemTag(i, t, num(s, KG["count"], 1.0, "positive")))
        for s, (u, f) in each(KG.Follow, (user, (KG.friend, Label.USER))):
            with reported():
                got.follows.append(rec.Follow(u, f, num(s, KG.weight, 1.0, "positive")))
        for s, (u, i) in each(KG.Dislike, (user, item)):
            with reported():
                got.dislikes.append(rec.Dislike(u, i, num(s, KG.ts, None, "int")))


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
