"""Which user attributes describe groups, and the Attribute nodes they give: the rule, written once.

Loaders (``kgrec load csv``'s ``users.csv``, MovieLens) and ``POST /v1/users`` (through
``GraphStore.upsert_profiles``) both call ``attribute_links``; only where the rules come from
differs. Every attribute stays a plain ``attr_<name>`` property of the user; those that describe
a group also give an ``(:Attribute {id: "kind:value", kind, value, name})`` node that the user
links to with HAS_ATTRIBUTE. Column names are matched case-insensitively and the kind is the
lowercased column name, except as noted:

- ``age``: the usual bands 0-17, 18-24, 25-34, 35-44, 45-54, 55+ (a number >= 0, or a numeric
  string; MovieLens 1M's age codes 1, 18, 25, 35, 45, 50, 56 land in the bands they start).
- ``zip``, ``zipcode``, ``zip_code``, ``postcode``, ``post_code``, ``postal_code``,
  ``postalcode``: kind ``region``, the first character of the code, spaces removed and
  uppercased (a US ZIP's first digit is its national area, 0 New England .. 9 the West; a UK or
  Canadian code's first letter its area). Give codes as strings: 02134 as a number loses its 0.
- ``gender``, ``sex``, ``occupation``: categorical, whatever their values.
- Any other column, at load, from its values over the loaded users: booleans are categorical;
  all-numeric columns with at most ``MAX_NUMERIC_CATEGORIES`` distinct values are categorical
  and with more are cut into quintile bands (edges: the 20/40/60/80 % quantiles of the loaded
  values, lower data points, repeated edges merged; values ``<e1``, ``[e1,e2)``, …, ``>=e4``);
  text columns are categorical when they have at most ``MAX_CATEGORIES`` distinct values and
  at least two users per value on average, otherwise (names, e-mails, free text) they stay plain.
- Through the API (one user at a time, nothing to count) a column other than the named ones is
  categorical or banded only when the store already holds Attribute nodes of its kind: banded
  when every value of the kind is a band (its edges read back from them), else categorical.

Categorical values are the text with runs of whitespace made one space (numbers written
plainly: ``3.0`` is ``3``, booleans ``true``/``false``); a value longer than ``MAX_VALUE``
characters, empty, or not a number where a number is needed gives no node.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from kgrec.graph.records import Attribute, AttrValue, GraphRecords, User, UserAttribute

AGE_BANDS: tuple[tuple[float, str], ...] = (
    (18, "0-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (math.inf, "55+"),
)
AGE_NAMES = frozenset({"age"})
REGION_NAMES = frozenset({"zip", "zipcode", "zip_code", "postcode", "post_code", "postal_code", "postalcode"})
CATEGORICAL_NAMES = frozenset({"gender", "sex", "occupation"})
REGION = "region"
MAX_CATEGORIES = 50
MAX_NUMERIC_CATEGORIES = 10
MAX_VALUE = 100
QUANTILES = (0.2, 0.4, 0.6, 0.8)

#: How a column gives an attribute: ``age`` bands, ``region`` prefix, ``category`` as is, ``bands`` by edges.
HOWS = ("age", "region", "category", "bands")


@dataclass(frozen=True)
class Rule:
    how: str
    kind: str
    edges: tuple[float, ...] = ()


@dataclass(frozen=True)
class AttributeRules:
    """The rule of each column (by lowercased name) besides the named ones, which always apply."""

    columns: dict[str, Rule] = field(default_factory=dict)

    def rule(self, column: str) -> Rule | None:
        name = column.strip().lower()
        if name in AGE_NAMES:
            return Rule("age", name)
        if name in REGION_NAMES:
            return Rule("region", REGION)
        if name in CATEGORICAL_NAMES:
            return Rule("category", name)
        return self.columns.get(name)

    def describe(self, columns: Iterable[str]) -> list[str]:
        """What becomes of each column, for a loader's notes (``age: age bands``, ``name: plain``)."""
        how = {"age": "age bands", "region": "region (first character)", "category": "categorical"}
        out = []
        for column in sorted(set(columns)):
            r = self.rule(column)
            if r is None:
                out.append(f"{column}: plain property")
            else:
                text = f"{len(r.edges) + 1} quantile bands" if r.how == "bands" else how[r.how]
                out.append(f"{column}: {text}")
        return out


def attribute_id(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def attribute_name(kind: str, value: str) -> str:
    """The display name of an Attribute (``age 25-34``, ``occupation engineer``)."""
    return f"{kind} {value}"


def split_id(key: str) -> tuple[str, str]:
    """(kind, value) of an attribute id, for a node only named by links."""
    kind, sep, value = key.partition(":")
    return (kind, value) if sep else ("attribute", key)


def filled(a: Attribute) -> Attribute:
    """``a`` with a missing kind, value or name read from its id (what every store exports)."""
    kind, value = split_id(a.id)
    kind, value = a.kind if a.kind is not None else kind, a.value if a.value is not None else value
    return Attribute(a.id, kind, value, a.name if a.name is not None else attribute_name(kind, value))


# -- values ------------------------------------------------------------------------------------
def _number(v: AttrValue) -> float | None:
    if type(v) is bool:
        return None
    if type(v) in (int, float):
        x = float(v)
    elif type(v) is str:
        try:
            x = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def number_text(x: float) -> str:
    """A number as plain text: integral values without a decimal point, others exactly (repr)."""
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def _text(v: AttrValue) -> str | None:
    if type(v) is bool:
        return "true" if v else "false"
    x = _number(v) if type(v) in (int, float) else None
    text = number_text(x) if x is not None else " ".join(str(v).split())
    return text if 0 < len(text) <= MAX_VALUE else None


def _band(x: float, edges: tuple[float, ...]) -> str:
    if x < edges[0]:
        return f"<{number_text(edges[0])}"
    for lo, hi in itertools.pairwise(edges):
        if x < hi:
            return f"[{number_text(lo)},{number_text(hi)})"
    return f">={number_text(edges[-1])}"


_NUM = r"(-?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?)"
_BAND = re.compile(rf"^(?:<{_NUM}|\[{_NUM},{_NUM}\)|>={_NUM})$")


def band_edges(value: str) -> list[float] | None:
    """The edges a band value names (``[20,45)`` -> [20, 45]), or None when it is no band."""
    m = _BAND.match(value)
    return None if m is None else [float(g) for g in m.groups() if g is not None]


def value_of(rule: Rule, v: AttrValue) -> str | None:
    """The attribute value ``v`` gives under ``rule``, or None (no node)."""
    if rule.how == "age":
        x = _number(v)
        return None if x is None or x < 0 else next(name for top, name in AGE_BANDS if x < top)
    if rule.how == "region":
        code = "".join(str(v).split()).upper() if type(v) is not bool else ""
        return code[0] if code and code[0].isalnum() else None
    if rule.how == "bands":
        x = _number(v)
        return None if x is None or not rule.edges else _band(x, rule.edges)
    return _text(v)


def attribute_links(attrs: dict[str, AttrValue], rules: AttributeRules) -> list[Attribute]:
    """The Attribute nodes a user with ``attrs`` links to under ``rules``, sorted by id: the one
    function loaders and ``POST /v1/users`` share."""
    found: dict[str, Attribute] = {}
    for column, v in attrs.items():
        rule = rules.rule(column)
        value = None if rule is None else value_of(rule, v)
        if rule is not None and value is not None:
            key = attribute_id(rule.kind, value)
            found[key] = Attribute(key, rule.kind, value, attribute_name(rule.kind, value))
    return [found[k] for k in sorted(found)]


def profile_records(users: Iterable[User], rules: AttributeRules) -> tuple[list[Attribute], list[UserAttribute]]:
    """The Attribute nodes and HAS_ATTRIBUTE links of ``users`` (nodes once each, first seen first)."""
    nodes: dict[str, Attribute] = {}
    links: dict[tuple[str, str], None] = {}
    for u in users:
        for a in attribute_links(u.attrs, rules):
            nodes.setdefault(a.id, a)
            links[(u.id, a.id)] = None
    return list(nodes.values()), [UserAttribute(u, a) for u, a in links]


# -- where rules come from -----------------------------------------------------------------------
def infer_rules(users: Sequence[User]) -> AttributeRules:
    """The rules of the columns besides the named ones, from their values over ``users``."""
    values: dict[str, list[AttrValue]] = {}
    for u in users:
        for column, v in u.attrs.items():
            values.setdefault(column.strip().lower(), []).append(v)
    base = AttributeRules()
    rules: dict[str, Rule] = {}
    for name, vs in values.items():
        if base.rule(name) is not None:
            continue
        rule = _infer(name, vs)
        if rule is not None:
            rules[name] = rule
    return AttributeRules(rules)


def _infer(name: str, vs: list[AttrValue]) -> Rule | None:
    if all(type(v) is bool for v in vs):
        return Rule("category", name)
    numbers = [_number(v) for v in vs]
    if all(x is not None for x in numbers):
        distinct = {x for x in numbers if x is not None}
        if len(distinct) <= MAX_NUMERIC_CATEGORIES:
            return Rule("category", name)
        data = np.array([x for x in numbers if x is not None], dtype=np.float64)
        edges = tuple(sorted({float(q) for q in np.quantile(data, QUANTILES, method="lower")}))
        return Rule("bands", name, edges)
    texts = [t for t in map(_text, vs) if t is not None]
    distinct_texts = set(texts)
    if distinct_texts and len(distinct_texts) <= MAX_CATEGORIES and 2 * len(distinct_texts) <= len(texts):
        return Rule("category", name)
    return None


def rules_from_attributes(nodes: Iterable[Attribute]) -> AttributeRules:
    """The rules the Attribute nodes a store holds imply (for users written one at a time)."""
    by_kind: dict[str, list[str]] = {}
    for a in map(filled, nodes):
        assert a.kind is not None and a.value is not None  # filled() fills them
        by_kind.setdefault(a.kind, []).append(a.value)
    base = AttributeRules()
    rules: dict[str, Rule] = {}
    for kind, vs in by_kind.items():
        if base.rule(kind) is not None or kind == REGION:
            continue
        edges = [band_edges(v) for v in vs]
        if all(e is not None for e in edges):
            rules[kind] = Rule("bands", kind, tuple(sorted({x for e in edges if e for x in e})))
        else:
            rules[kind] = Rule("category", kind)
    return AttributeRules(rules)


def add_attribute_records(records: GraphRecords) -> AttributeRules:
    """Infer the rules from ``records.users`` and add their Attribute nodes and links (replacing
    any already there); returns the rules, for the loader's notes."""
    rules = infer_rules(records.users)
    records.attributes, records.has_attribute = profile_records(records.users, rules)
    return rules
