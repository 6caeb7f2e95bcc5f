"""GraphSnapshot: canonical arrays, a fingerprint that tracks content, pickle-free persistence."""

from __future__ import annotations

import mmap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from kgrec.graph.records import Fact, GraphRecords, Interaction, Item, Tagging
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.loaders.synthetic import SyntheticGraph


def _copy(records: GraphRecords) -> GraphRecords:
    return GraphRecords(**{k: list(v) for k, v in vars(records).items()})


def test_csr_shapes_and_counts_follow_the_records(synthetic: SyntheticGraph, snapshot: GraphSnapshot) -> None:
    r = synthetic.records
    nu, ni, nt = len(snapshot.users), len(snapshot.items), len(snapshot.tags)
    assert (nu, ni) == (len(r.users), len(r.items))
    assert snapshot.interactions.shape == (nu, ni)
    assert snapshot.item_tags.shape == (ni, nt)
    assert snapshot.user_tags.shape == (nu, nt)
    assert snapshot.follows.shape == (nu, nu)
    assert snapshot.interactions.nnz == len(r.interactions)
    assert len(snapshot.ratings) == len(snapshot.timestamps) == snapshot.interactions.nnz
    assert len(snapshot.taggings) == len(r.taggings)
    assert snapshot.follows.nnz == len(r.follows)
    assert list(snapshot.users.ids) == sorted(u.id for u in r.users)
    for m in (snapshot.interactions, snapshot.item_tags, snapshot.user_tags, snapshot.follows):
        assert isinstance(m, sp.csr_matrix) and m.has_sorted_indices
    first = r.interactions[0]
    u, i = snapshot.users.index[first.user], snapshot.items.index[first.item]
    assert snapshot.interactions[u, i] == pytest.approx(first.weight)
    assert i in snapshot.user_items(u)


def test_record_order_does_not_change_the_fingerprint(synthetic: SyntheticGraph, snapshot: GraphSnapshot) -> None:
    shuffled = _copy(synthetic.records)
    for name in vars(shuffled):
        getattr(shuffled, name).reverse()
    assert build_snapshot(shuffled).fingerprint == snapshot.fingerprint


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.interactions.__setitem__(0, replace(r.interactions[0], weight=r.interactions[0].weight + 1)),
        lambda r: r.interactions.__setitem__(0, replace(r.interactions[0], rating=1.0)),
        lambda r: r.interactions.pop(),
        lambda r: r.items.__setitem__(0, Item(r.items[0].id, "Another title")),
        lambda r: r.taggings.append(Tagging(r.users[0].id, r.items[-1].id, r.tags[0].id, 5)),
        lambda r: r.facts.append(Fact(r.items[0].id, "http://p", "http://e", "E")),
        lambda r: r.follows.pop(),
    ],
    ids=["weight", "rating", "fewer-interactions", "title", "tagging", "fact", "follow"],
)
def test_fingerprint_changes_when_data_changes(synthetic: SyntheticGraph, snapshot: GraphSnapshot, change) -> None:
    changed = _copy(synthetic.records)
    change(changed)
    assert build_snapshot(changed).fingerprint != snapshot.fingerprint


def test_duplicate_pairs_are_refused(synthetic: SyntheticGraph) -> None:
    dup = _copy(synthetic.records)
    dup.interactions.append(Interaction(dup.interactions[0].user, dup.interactions[0].item, 9.0))
    with pytest.raises(ValueError, match="duplicate"):
        build_snapshot(dup)


def test_save_and_load_round_trip(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    snapshot.save(tmp_path)
    loaded = GraphSnapshot.load(tmp_path)
    assert loaded.fingerprint == snapshot.fingerprint
    assert loaded.users.ids == snapshot.users.ids
    assert loaded.items.index == snapshot.items.index
    assert (loaded.interactions != snapshot.interactions).nnz == 0
    assert (loaded.follows != snapshot.follows).nnz == 0
    np.testing.assert_array_equal(loaded.timestamps, snapshot.timestamps)
    np.testing.assert_array_equal(loaded.taggings, snapshot.taggings)
    assert loaded.item_titles == snapshot.item_titles
    assert loaded.user_attrs == snapshot.user_attrs


def test_load_refuses_tampered_content(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    snapshot.save(tmp_path)
    meta = (tmp_path / "snapshot.json").read_text(encoding="utf-8")
    (tmp_path / "snapshot.json").write_text(meta.replace(snapshot.item_titles[0], "Tampered"), encoding="utf-8")
    with pytest.raises(ValueError, match="fingerprint"):
        GraphSnapshot.load(tmp_path)


def test_load_never_unpickles(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    snapshot.save(tmp_path)
    with np.load(tmp_path / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "arrays.npz", **{**arrays, "ratings": np.array([object()], dtype=object)})  # pickles it
    with pytest.raises(ValueError, match="Python objects"):
        GraphSnapshot.load(tmp_path)


def test_loaded_arrays_are_read_only_maps_of_the_files(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    """Arrays are mapped, not copied: scipy builds the matrices over the mapped files, and an
    in-place write fails instead of changing what every process shares."""
    snapshot.save(tmp_path)
    loaded = GraphSnapshot.load(tmp_path)
    for array in (loaded.interactions.data, loaded.interactions.indices, loaded.interactions.indptr,
                  loaded.timestamps, loaded.taggings, loaded.item_tags.indices):
        assert not array.flags.writeable
        assert isinstance(array.base, mmap.mmap) or isinstance(getattr(array.base, "base", None), mmap.mmap)
    with pytest.raises(ValueError, match="read-only"):
        loaded.interactions.data[0] = 1.0
    assert loaded.fingerprint == snapshot.fingerprint


def test_with_interactions_keeps_side_data_and_refingerprints(snapshot: GraphSnapshot) -> None:
    train = snapshot.interactions.copy().tolil()
    train[0, snapshot.user_items(0)[0]] = 0
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    sub = snapshot.with_interactions(train)
    assert sub.interactions.nnz == snapshot.interactions.nnz - 1
    assert sub.interactions.shape == snapshot.interactions.shape
    assert len(sub.ratings) == len(sub.timestamps) == sub.interactions.nnz
    assert sub.users is snapshot.users and sub.items is snapshot.items
    assert (sub.item_tags != snapshot.item_tags).nnz == 0
    assert sub.fingerprint != snapshot.fingerprint
    tagger = int(np.bincount(snapshot.taggings["user"]).argmax())
    assert snapshot.user_tags[tagger].nnz > 0
    kept = snapshot.taggings[snapshot.taggings["user"] != tagger]
    filtered = snapshot.with_interactions(train, taggings=kept)
    assert filtered.user_tags[tagger].nnz == 0
    assert len(filtered.taggings) == len(kept)
