"""Snapshot -> labelled (head, relation, tail) triples for knowledge-graph embedding.

Entity labels are ``user:<id>``, ``item:<id>``, ``tag:<id>`` and ``entity:<iri>``, so the
same snapshot always yields the same vocabulary, and an artifact's id maps can be matched
against a later snapshot by label. The entity vocabulary covers every node of the
snapshot (not only those that occur in a triple), so every item has a vector to score.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from kgrec.graph.schema import Rel
from kgrec.graph.snapshot import GraphSnapshot

INTERACTED = Rel.INTERACTED.value
HAS_TAG = Rel.HAS_TAG.value
FOLLOWS = Rel.FOLLOWS.value
#: Not a stored relationship type: user–tag counts aggregated from TAGGED relationships.
USES_TAG = "USES_TAG"
#: Prefix of one relation per RDF predicate: ``RELATED:<predicate iri>``.
RELATED_PREFIX = Rel.RELATED.value + ":"
#: Suffix of the explicit inverse of a relation (``INTERACTED_INV``: item -> user).
INVERSE_SUFFIX = "_INV"

BASE_RELATIONS = (INTERACTED, HAS_TAG, FOLLOWS, USES_TAG, Rel.RELATED.value)


def user_label(user_id: str) -> str:
    return f"user:{user_id}"


def item_label(item_id: str) -> str:
    return f"item:{item_id}"


def tag_label(tag_id: str) -> str:
    return f"tag:{tag_id}"


def entity_label(iri: str) -> str:
    return f"entity:{iri}"


def inverse(relation: str) -> str:
    return relation + INVERSE_SUFFIX


@dataclass(frozen=True)
class TripleOptions:
    """Which triples to make.

    ``drop`` names base relations to leave out (``RELATED`` drops every predicate).
    ``min_weight`` keeps an edge only if its weight (interaction weight, tag count,
    tagging count, follow weight) reaches the threshold; a float applies to every
    weighted relation, a mapping per relation. ``inverse`` adds ``<REL>_INV`` tail->head
    triples as separate relations (explicit, so relation ids stay simple).
    """

    drop: frozenset[str] = frozenset()
    min_weight: float | Mapping[str, float] = 0.0
    inverse: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "drop", frozenset(self.drop))
        unknown = set(self.drop) - set(BASE_RELATIONS)
        if unknown:
            raise ValueError(f"unknown relation(s) to drop {sorted(unknown)}; expected some of {BASE_RELATIONS}")
        if isinstance(self.min_weight, Mapping):
            bad = set(self.min_weight) - set(BASE_RELATIONS)
            if bad:
                raise ValueError(f"min_weight for unknown relation(s) {sorted(bad)}")

    def threshold(self, relation: str) -> float:
        if isinstance(self.min_weight, Mapping):
            return float(self.min_weight.get(relation, 0.0))
        return float(self.min_weight)


@dataclass(frozen=True)
class LabeledTriples:
    """Triples as an (n, 3) array of string labels, with their edge weights and the
    full entity vocabulary (sorted) that ids are assigned from."""

    triples: np.ndarray
    weights: np.ndarray
    entities: tuple[str, ...]
    relations: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.triples)

    def of(self, relations: Collection[str]) -> LabeledTriples:
        """Only the triples of the given relations (vocabulary unchanged)."""
        mask = np.isin(self.triples[:, 1], list(relations))
        return LabeledTriples(self.triples[mask], self.weights[mask], self.entities, self.relations)

    def without(self, relations: Collection[str]) -> LabeledTriples:
        mask = ~np.isin(self.triples[:, 1], list(relations))
        return LabeledTriples(self.triples[mask], self.weights[mask], self.entities, self.relations)

    def take(self, mask: np.ndarray) -> LabeledTriples:
        return LabeledTriples(self.triples[mask], self.weights[mask], self.entities, self.relations)


def entity_vocabulary(snapshot: GraphSnapshot) -> tuple[str, ...]:
    """Every node of the snapshot as an entity label, sorted."""
    labels = [user_label(u) for u in snapshot.users.ids]
    labels += [item_label(i) for i in snapshot.items.ids]
    labels += [tag_label(t) for t in snapshot.tags.ids]
    labels += [entity_label(e) for e in snapshot.entities.ids]
    return tuple(sorted(set(labels)))


def build_triples(snapshot: GraphSnapshot, options: TripleOptions | None = None) -> LabeledTriples:
    """All triples of a snapshot under ``options``, in a deterministic order."""
    opts = options or TripleOptions()
    users = np.array([user_label(u) for u in snapshot.users.ids], dtype=object)
    items = np.array([item_label(i) for i in snapshot.items.ids], dtype=object)
    tags = np.array([tag_label(t) for t in snapshot.tags.ids], dtype=object)
    ents = np.array([entity_label(e) for e in snapshot.entities.ids], dtype=object)

    parts: list[tuple[np.ndarray, np.ndarray, str, np.ndarray]] = []

    def add_matrix(relation: str, m: sp.csr_matrix, heads: np.ndarray, tails: np.ndarray) -> None:
        if relation in opts.drop:
            return
        coo = m.tocoo()
        keep = coo.data >= opts.threshold(relation)
        parts.append((heads[coo.row[keep]], tails[coo.col[keep]], relation, coo.data[keep].astype(np.float32)))

    add_matrix(INTERACTED, snapshot.interactions, users, items)
    add_matrix(HAS_TAG, snapshot.item_tags, items, tags)
    add_matrix(FOLLOWS, snapshot.follows, users, users)
    add_matrix(USES_TAG, snapshot.user_tags, users, tags)
    if Rel.RELATED.value not in opts.drop and len(snapshot.facts):
        f = snapshot.facts
        for p_idx, predicate in enumerate(snapshot.predicates):
            sel = f["predicate"] == p_idx
            if sel.any():
                n = int(sel.sum())
                parts.append(
                    (items[f["item"][sel]], ents[f["entity"][sel]], RELATED_PREFIX + predicate, np.ones(n, np.float32))
                )

    rows: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for heads, tails, relation, w in parts:
        rel_col = np.full(len(heads), relation, dtype=object)
        rows.append(np.stack([heads, rel_col, tails], axis=1))
        weights.append(w)
        if opts.inverse:
            rows.append(np.stack([tails, np.full(len(heads), inverse(relation), dtype=object), heads], axis=1))
            weights.append(w)
    if rows:
        triples = np.concatenate(rows).astype(str)
        w_all = np.concatenate(weights)
    else:
        triples = np.zeros((0, 3), dtype=str)
        w_all = np.zeros(0, dtype=np.float32)
    relations = tuple(sorted(set(triples[:, 1].tolist()))) if len(triples) else ()
    return LabeledTriples(triples, w_all, entity_vocabulary(snapshot), relations)


def split_interactions(
    triples: LabeledTriples, test: float, validation: float, seed: int
) -> tuple[LabeledTriples, LabeledTriples, LabeledTriples]:
    """Hold out random INTERACTED triples (and their inverses) for testing and validation.

    Other relations always stay in training: the link-prediction metrics are about
    the user->item relation the recommender scores with.
    """
    if test < 0 or validation < 0 or test + validation >= 1:
        raise ValueError(f"test ({test}) and validation ({validation}) fractions must be >= 0 and sum below 1")
    inter = np.flatnonzero(triples.triples[:, 1] == INTERACTED)
    rng = np.random.default_rng(seed)
    order = rng.permutation(inter)
    n_test = round(test * len(inter))
    n_val = round(validation * len(inter))
    test_idx, val_idx = order[:n_test], order[n_test : n_test + n_val]
    held = np.zeros(len(triples), dtype=bool)
    held[test_idx] = True
    held[val_idx] = True
    # Drop the inverse of every held-out pair too, or it would leak the answer.
    inv = triples.triples[:, 1] == inverse(INTERACTED)
    if inv.any() and held.any():
        held_pairs = {(h, t) for h, _, t in triples.triples[held]}
        for i in np.flatnonzero(inv):
            t, _, h = triples.triples[i]
            if (h, t) in held_pairs:
                held[i] = True
    is_test = np.zeros(len(triples), dtype=bool)
    is_test[test_idx] = True
    is_val = np.zeros(len(triples), dtype=bool)
    is_val[val_idx] = True
    return triples.take(~held), triples.take(is_test), triples.take(is_val)
