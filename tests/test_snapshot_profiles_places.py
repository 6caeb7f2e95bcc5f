"""Attributes and locations in the GraphSnapshot: ids, kinds and names, users × attributes, item_lat /
item_lon; saved and loaded with it and part of its fingerprint (only when a graph has them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgrec.graph.records import Attribute, GraphRecords, Interaction, Item, User, UserAttribute
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.loaders.synthetic import generate


def records(**changes: object) -> GraphRecords:
    r = GraphRecords(
        users=[User("ann", {"age": 30}), User("bo")],
        items=[Item("cafe", "Café", {}, (48.8566, 2.3522)), Item("museum"), Item("park", None, {}, (-33.9, 151.2))],
        attributes=[Attribute("age:25-34", "age", "25-34", "age 25-34"), Attribute("team:red")],
        interactions=[Interaction("ann", "cafe", 2.0), Interaction("bo", "park", 1.0)],
        has_attribute=[UserAttribute("ann", "age:25-34"), UserAttribute("ann", "team:red"),
                       UserAttribute("cy", "team:red")],  # cy is only named by the link
    )
    for name, value in changes.items():
        setattr(r, name, value)
    return r


def test_the_snapshot_holds_attributes_and_locations() -> None:
    s = build_snapshot(records())
    assert s.users.ids == ("ann", "bo", "cy")
    assert s.attributes.ids == ("age:25-34", "team:red")
    assert s.attribute_kinds == ("age", "team") and s.attribute_names == ("age 25-34", "team red")
    assert s.user_attributes.toarray().tolist() == [[1, 1], [0, 0], [0, 1]]
    assert s.counts["attributes"] == 2 and s.counts["has_attribute"] == 3
    assert s.item_lat[s.items.index["cafe"]] == 48.8566 and s.item_lon[s.items.index["park"]] == 151.2
    assert np.isnan(s.item_lat[s.items.index["museum"]])
    cut = s.with_interactions(s.interactions)
    assert cut.user_attributes is s.user_attributes and cut.item_lat is s.item_lat


def test_they_are_saved_loaded_and_fingerprinted(tmp_path: Path) -> None:
    s = build_snapshot(records())
    s.save(tmp_path / "snap")
    back = GraphSnapshot.load(tmp_path / "snap")
    assert back.fingerprint == s.fingerprint
    assert back.attributes.ids == s.attributes.ids and back.attribute_names == s.attribute_names
    assert (back.user_attributes != s.user_attributes).nnz == 0
    np.testing.assert_array_equal(back.item_lat, s.item_lat)
    np.testing.assert_array_equal(back.item_lon, s.item_lon)
    fingerprints = {
        s.fingerprint,
        build_snapshot(records(has_attribute=[])).fingerprint,
        build_snapshot(records(has_attribute=[UserAttribute("ann", "team:red")])).fingerprint,
        build_snapshot(records(items=[Item("cafe", "Café", {}, (48.8566, 2.35220001)), Item("museum"),
                                      Item("park", None, {}, (-33.9, 151.2))])).fingerprint,
    }
    assert len(fingerprints) == 4


def test_graphs_without_them_keep_their_fingerprint() -> None:
    plain = records(attributes=[], has_attribute=[], items=[Item("cafe", "Café"), Item("museum"), Item("park")])
    s = build_snapshot(plain)
    assert s.user_attributes.shape == (2, 0) and np.isnan(s.item_lat).all()
    # What this synthetic graph's fingerprint was before attributes and locations joined the snapshot
    # (computed with the code of commit c36523e), so saved bundles stay valid.
    assert build_snapshot(generate(users=50, items=80, seed=3).records).fingerprint == "u50-i80-x750-9912249bfe6e3aae"
