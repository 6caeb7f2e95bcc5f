"""The location model on the real Gowalla check-ins (skipped without ``KGREC_DATASETS``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.recommenders.evaluation.ranking_metrics import ndcg_of_lists
from kgrec.recommenders.evaluation.splits import Split, random_holdout
from kgrec.recommenders.evaluation.validation_cut import top_items
from kgrec.recommenders.models.geo import Geo
from kgrec.recommenders.reason_paths import path_exists
from kgrec.recommenders.registry import create

pytestmark = pytest.mark.datasets


@pytest.fixture(scope="module")
def gowalla(datasets_dir: str) -> Split:
    from kgrec.loaders import gowalla

    path = Path(datasets_dir) / "gowalla-u1000"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    snap = build_snapshot(gowalla.load(path).records)
    return random_holdout(snap, fraction=0.2, seed=42)


def _ndcg(model: object, split: Split, users: np.ndarray) -> float:
    return float(ndcg_of_lists([top_items(model, split.train, int(u), 10) for u in users],  # type: ignore[arg-type]
                               [split.test[int(u)] for u in users], 10).mean())


def test_gowalla_geography_is_learned_and_pays(gowalla: Split) -> None:
    train: GraphSnapshot = gowalla.train
    assert Geo.applies_to(train)
    geo = create("geo", validation_users=300).fit(train)
    assert isinstance(geo, Geo)
    # the unit is the data's own: a median of tens to hundreds of metres between a user's places
    assert 0.05 < geo.scale.unit < 1.0
    assert geo.validation and max(geo.validation.values()) > 0.05
    users = np.asarray(gowalla.users[:300])
    popularity = create("popularity").fit(train)
    geo_ndcg, pop_ndcg = _ndcg(geo, gowalla, users), _ndcg(popularity, gowalla, users)
    assert geo_ndcg > 2 * pop_ndcg, (geo_ndcg, pop_ndcg)
    for user in train.users.ids[:20]:
        for rec in geo.recommend(user, 2):
            reasons = geo.explain(user, rec.item_id)
            assert reasons and all(path_exists(train, r) for r in reasons)
            assert any(" from " in r.text and "checked in" in r.text for r in reasons)


def test_gowalla_near_walks_beat_plain_walks(gowalla: Split) -> None:
    users = np.asarray(gowalla.users[:300])
    plain = create("graph_walk").fit(gowalla.train)
    near = create("graph_walk", near_weight=0.15, near_cell=0.75).fit(gowalla.train)
    assert _ndcg(near, gowalla, users) > _ndcg(plain, gowalla, users)
