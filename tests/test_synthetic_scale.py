"""The Last.fm-shaped generator: its counts scale, its planted structure holds, its CSV loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgrec.graph.snapshot import build_snapshot
from kgrec.loaders import csv_dir
from kgrec.loaders.synthetic_scale import INTERACTIONS_PER_USER, lastfm_like


def test_counts_scale_together_and_the_seed_decides() -> None:
    small, big = lastfm_like(0.1, seed=3), lastfm_like(0.4, seed=3)
    a, b = small.counts(), big.counts()
    for key in ("users", "items", "tags", "interactions", "taggings", "item_tags", "follows"):
        assert 3.0 < b[key] / a[key] < 5.0, key
    per_user = a["interactions"] / a["users"]
    assert 0.9 * INTERACTIONS_PER_USER < per_user <= INTERACTIONS_PER_USER
    again = lastfm_like(0.1, seed=3)
    assert np.array_equal(again.interactions, small.interactions) and np.array_equal(again.follows, small.follows)
    assert not np.array_equal(lastfm_like(0.1, seed=4).interactions, small.interactions)


def test_planted_structure() -> None:
    g = lastfm_like(0.2, seed=1)
    u, i = g.interactions[:, 0], g.interactions[:, 1]
    assert (g.item_community[i] == g.user_community[u]).mean() > 0.7
    assert len(np.unique(u * g.items + i)) == len(u)
    ft, fu = g.follows[:, 0], g.follows[:, 1]
    assert (g.user_community[ft] == g.user_community[fu]).mean() > 0.8
    assert set(map(tuple, g.follows.tolist())) == {(b, a) for a, b in g.follows.tolist()}
    assert (ft != fu).all()
    t = g.taggings
    assert (g.tag_community[t[:, 2]] == g.item_community[t[:, 1]]).all()
    popularity = np.bincount(i, minlength=g.items)
    assert popularity.max() > 20 * max(1.0, np.median(popularity))


def test_csv_loads_into_the_same_graph(tmp_path: Path) -> None:
    g = lastfm_like(0.05, seed=2)
    loaded = csv_dir.load(g.write_csv(tmp_path / "csv"))
    assert loaded.report.summary() == {}
    from_csv, direct = build_snapshot(loaded.records), build_snapshot(g.records())
    assert from_csv.fingerprint == direct.fingerprint == g.snapshot().fingerprint
    assert from_csv.counts["interactions"] == len(g.interactions)
    assert from_csv.counts["follows"] == len(g.follows)
