"""The RDF vocabulary of the graph, shared by export (``graph.rdf_export``) and import (``graph.rdf_import``).

Classes and properties live in ``https://kgrec.dev/ns#`` (prefix ``kg:``); nodes get IRIs under
``https://kgrec.dev/id/<kind>/<url-quoted id>``. Floats are written as exact ``xsd:decimal``
lexical forms, because rdflib's Turtle writer rounds ``xsd:double`` to 7 digits; reading them
back gives floats again, so an export imports to an equal graph.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from rdflib import XSD, Literal, Namespace, URIRef
from rdflib.term import Node

from kgrec.graph.schema import Label

KG = Namespace("https://kgrec.dev/ns#")
#: The W3C WGS84 Basic Geo vocabulary: an item's location is ``geo:lat`` and ``geo:long`` (degrees).
GEO = Namespace("http://www.w3.org/2003/01/geo/wgs84_pos#")
ID_BASE = "https://kgrec.dev/id/"
#: Fact predicates that are not absolute IRIs are minted here (and unquoted on import).
PREDICATE_BASE = "https://kgrec.dev/ns/predicate/"

#: CLI format names -> rdflib parser/serializer names.
FORMATS = {"ttl": "turtle", "nt": "nt", "xml": "xml", "jsonld": "json-ld", "n3": "n3", "trig": "trig"}
EXPORT_FORMATS = ("ttl", "nt")

#: The IRI path segment (``/id/<kind>/``) and the RDF class of each node label.
NODE_KIND = {Label.USER: "user", Label.ITEM: "item", Label.TAG: "tag", Label.ENTITY: "entity",
             Label.ATTRIBUTE: "attribute"}
NODE_CLASS = {Label.USER: KG.User, Label.ITEM: KG.Item, Label.TAG: KG.Tag, Label.ENTITY: KG.Entity,
              Label.ATTRIBUTE: KG.Attribute}
_ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")


def quote_key(key: str) -> str:
    """A key as one IRI path segment (every reserved character escaped, ``/`` included)."""
    return quote(key, safe="")


def node_iri(label: Label, key: str) -> URIRef:
    """The IRI of a node: entities keep their own IRI when it is one, everything else is minted."""
    if label is Label.ENTITY and _ABSOLUTE_IRI.match(key):
        return URIRef(key)
    return URIRef(f"{ID_BASE}{NODE_KIND[label]}/{quote_key(key)}")


def predicate_iri(predicate: str) -> URIRef:
    """A fact predicate as an IRI: absolute IRIs as they are, anything else minted."""
    return URIRef(predicate if _ABSOLUTE_IRI.match(predicate) else PREDICATE_BASE + quote_key(predicate))


def number_literal(value: float | int) -> Literal:
    """Exact literal for a number (xsd:decimal from ``repr``; rdflib rounds xsd:double in Turtle)."""
    if isinstance(value, bool):
        return Literal(value)
    if isinstance(value, int):
        return Literal(value, datatype=XSD.integer)
    if not math.isfinite(value):
        return Literal(str(value).replace("inf", "INF").replace("nan", "NaN"), datatype=XSD.double)
    return Literal(format(Decimal(repr(float(value))), "f"), datatype=XSD.decimal)


def value_literal(value: Any) -> Literal:
    """An attribute value: numbers exact (``number_literal``), anything else as a string."""
    return number_literal(value) if isinstance(value, int | float) else Literal(str(value))


def python_value(term: Node) -> Any:
    """A literal's Python value; decimals back to float (they were floats when written)."""
    value = term.toPython() if isinstance(term, Literal) else term
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Literal):  # an ill-typed literal rdflib could not convert
        return str(value)
    return value
