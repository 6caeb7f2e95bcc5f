"""Offline evaluation: metric values computed by hand, leak-free splits, the evaluate loop."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from kgrec.graph.records import GraphRecords, Interaction, ItemTag, Tagging
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.recommenders.base import Reason, Recommendation, Recommender
from kgrec.recommenders.evaluation import ranking_metrics as metrics
from kgrec.recommenders.evaluation.evaluation_report import save_plot, to_json, to_markdown, to_table
from kgrec.recommenders.evaluation.offline_evaluation import Evaluation, evaluate
from kgrec.recommenders.evaluation.splits import leave_last_out, make_split, random_holdout, time_split

# -- metrics, by hand -----------------------------------------------------------------------


def test_ranking_metrics_two_hits_of_two() -> None:
    ranked, rel = [1, 2, 3, 4, 5], {1, 3}
    # DCG = 1/log2(2) + 1/log2(4) = 1.5 ; IDCG = 1 + 1/log2(3)
    assert metrics.ndcg_at_k(ranked, rel, 5) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert metrics.recall_at_k(ranked, rel, 5) == 1.0
    assert metrics.precision_at_k(ranked, rel, 5) == pytest.approx(0.4)
    assert metrics.hit_rate_at_k(ranked, rel, 5) == 1.0
    assert metrics.average_precision_at_k(ranked, rel, 5) == pytest.approx((1 + 2 / 3) / 2)
    assert metrics.reciprocal_rank_at_k(ranked, rel, 5) == 1.0


def test_ranking_metrics_late_single_hit() -> None:
    ranked, rel = [9, 8, 1], {1, 2, 3}
    assert metrics.ndcg_at_k(ranked, rel, 3) == pytest.approx(0.5 / (1 + 1 / math.log2(3) + 0.5))
    assert metrics.recall_at_k(ranked, rel, 3) == pytest.approx(1 / 3)
    assert metrics.precision_at_k(ranked, rel, 3) == pytest.approx(1 / 3)
    assert metrics.average_precision_at_k(ranked, rel, 3) == pytest.approx((1 / 3) / 3)
    assert metrics.reciprocal_rank_at_k(ranked, rel, 3) == pytest.approx(1 / 3)


def test_metrics_cut_at_k_and_without_hits() -> None:
    assert metrics.ndcg_at_k([5, 1], {1}, 1) == 0.0
    assert metrics.reciprocal_rank_at_k([5, 1], {1}, 1) == 0.0
    assert metrics.reciprocal_rank_at_k([5, 1], {1}, 2) == 0.5
    assert metrics.accuracy_at_k([4, 5], {1}, 2) == dict.fromkeys(metrics.ACCURACY, 0.0)
    # a short list is still judged against k: precision counts the empty slots
    assert metrics.precision_at_k([1], {1}, 10) == pytest.approx(0.1)
    # perfect ranking -> NDCG 1 even when there are more relevant items than k
    assert metrics.ndcg_at_k([1, 2], {1, 2, 3}, 2) == pytest.approx(1.0)


def test_beyond_accuracy_metrics() -> None:
    assert metrics.catalogue_coverage([[0, 1], [1, 2]], 10) == pytest.approx(0.3)
    item_users = np.array([5, 1, 0])
    expected = (-math.log2(5 / 8) - math.log2(1 / 8) - math.log2(1 / 8)) / 3
    assert metrics.novelty([[0, 1, 2]], item_users, 8) == pytest.approx(expected)
    tags = sp.csr_matrix(np.array([[1, 0], [2, 0], [0, 1], [0, 0]], dtype=np.float32))
    # pairs: (0,1) cos 1, (0,2) 0, (1,2) 0 -> mean 1/3; item 3 has no tags and is skipped
    assert metrics.intra_list_diversity([[0, 1, 2, 3]], tags) == pytest.approx(2 / 3)
    assert math.isnan(metrics.intra_list_diversity([[0, 3]], tags))
    # overlaps: (a,b)=2, (a,c)=0, (b,c)=0 -> mean 2/3 items of k=2 -> 1 - 1/3
    assert metrics.personalisation([[0, 1], [0, 1], [2, 3]], 2, 4) == pytest.approx(2 / 3)
    assert metrics.personalisation([[0, 1], [0, 1]], 2, 4) == pytest.approx(0.0)
    assert metrics.rmse(np.array([1.0, 2.0]), np.array([2.0, 2.0])) == pytest.approx(math.sqrt(0.5))
    assert metrics.mae(np.array([1.0, 2.0]), np.array([2.0, 2.0])) == pytest.approx(0.5)


# -- splits ---------------------------------------------------------------------------------


def _pairs(m: sp.csr_matrix) -> set[tuple[int, int]]:
    c = m.tocoo()
    return set(zip(c.row.tolist(), c.col.tolist(), strict=True))


@pytest.mark.parametrize("kind", ["random", "leave-last", "time"])
def test_split_partitions_interactions(snapshot: GraphSnapshot, kind: str) -> None:
    split = make_split(snapshot, kind, seed=3)
    train = _pairs(split.train.interactions)
    test = {(u, int(i)) for u, items in split.test.items() for i in items}
    assert test and not train & test
    assert train | test == _pairs(snapshot.interactions)
    for u in split.test:  # every evaluated user keeps training history
        assert split.train.interactions[u].nnz > 0
    # kept interactions carry their timestamps into the training snapshot
    assert split.train.interactions.nnz == len(split.train.timestamps)
    assert (split.train.timestamps >= 0).all()


@pytest.mark.parametrize("kind", ["random", "leave-last", "time"])
def test_split_is_seeded(snapshot: GraphSnapshot, kind: str) -> None:
    a, b = make_split(snapshot, kind, seed=5), make_split(snapshot, kind, seed=5)
    assert a.train.fingerprint == b.train.fingerprint
    assert {u: v.tolist() for u, v in a.test.items()} == {u: v.tolist() for u, v in b.test.items()}
    if kind == "random":
        assert make_split(snapshot, kind, seed=6).train.fingerprint != a.train.fingerprint


def test_random_holdout_fraction_and_min_interactions(snapshot: GraphSnapshot) -> None:
    split = random_holdout(snapshot, fraction=0.2, seed=1, min_interactions=5)
    for u, items in split.test.items():
        n = snapshot.interactions[u].nnz
        assert len(items) == max(1, round(0.2 * n))
    few = random_holdout(snapshot, seed=1, min_interactions=10_000)
    assert few.test == {} and few.train.interactions.nnz == snapshot.interactions.nnz


def test_leave_last_holds_out_the_latest(snapshot: GraphSnapshot) -> None:
    split = leave_last_out(snapshot, seed=1)
    m = snapshot.interactions
    for u, items in split.test.items():
        assert len(items) == 1
        row = slice(m.indptr[u], m.indptr[u + 1])
        latest = snapshot.timestamps[row].max()
        ts_of = dict(zip(m.indices[row].tolist(), snapshot.timestamps[row].tolist(), strict=True))
        assert ts_of[int(items[0])] == latest


def test_time_split_is_a_global_cut(snapshot: GraphSnapshot) -> None:
    split = time_split(snapshot, fraction=0.2, seed=1)
    m = snapshot.interactions.tocoo()
    ts = {(r, c): t for r, c, t in zip(m.row.tolist(), m.col.tolist(), snapshot.timestamps.tolist(), strict=True)}
    test_ts = [ts[(u, int(i))] for u, items in split.test.items() for i in items]
    assert min(test_ts) >= np.quantile(snapshot.timestamps, 0.75)


def test_splits_need_timestamps_and_sane_fractions(snapshot: GraphSnapshot) -> None:
    bare = snapshot.with_interactions(snapshot.interactions)  # timestamps unknown
    with pytest.raises(ValueError, match="timestamps"):
        leave_last_out(bare)
    with pytest.raises(ValueError, match="timestamps"):
        time_split(bare)
    with pytest.raises(ValueError, match="fraction"):
        random_holdout(snapshot, fraction=1.0)
    with pytest.raises(ValueError, match="unknown split"):
        make_split(snapshot, "tomorrow")


def test_held_out_taggings_do_not_leak(snapshot: GraphSnapshot) -> None:
    split = random_holdout(snapshot, seed=2)
    held = {(u, int(i)) for u, items in split.test.items() for i in items}
    tg = snapshot.taggings
    leaking = [(u, i) for u, i in zip(tg["user"].tolist(), tg["item"].tolist(), strict=True) if (u, i) in held]
    assert leaking, "the fixture should have taggings on held-out pairs"
    kept = split.train.taggings
    assert not {(u, i) for u, i in zip(kept["user"].tolist(), kept["item"].tolist(), strict=True)} & held
    assert len(kept) == len(tg) - len(leaking)
    # user_tags is rebuilt from the kept taggings only
    assert split.train.user_tags.sum() == len(kept)
    # curated item tags (not counts of taggings) are kept as they are
    assert (split.train.item_tags != snapshot.item_tags).nnz == 0


def test_derived_item_tag_counts_are_recounted() -> None:
    """When HAS_TAG counts are tagging counts (Last.fm), a tag only the held-out pair gave
    disappears from the item, and shared tags lose one count."""
    recs = GraphRecords()
    for u in ("a", "b"):
        for i in ("x", "y", "z", "w", "v", "s"):
            recs.interactions.append(Interaction(u, i, 1.0))
    recs.taggings += [Tagging("a", "x", "rare"), Tagging("a", "x", "rock"), Tagging("b", "x", "rock")]
    recs.item_tags += [ItemTag("x", "rare", 1.0), ItemTag("x", "rock", 2.0)]
    snap = build_snapshot(recs)
    held_a_x = None
    for seed in range(100):
        split = random_holdout(snap, fraction=0.2, seed=seed, min_interactions=5)
        a, x = snap.users.index["a"], snap.items.index["x"]
        b = snap.users.index["b"]
        if x in split.test.get(a, ()) and x not in split.test.get(b, ()):
            held_a_x = split
            break
    assert held_a_x is not None
    it = held_a_x.train.item_tags
    assert it[x, snap.tags.index["rare"]] == 0
    assert it[x, snap.tags.index["rock"]] == 1.0
    assert held_a_x.train.user_tags[a].nnz == 0


# -- the evaluate loop -----------------------------------------------------------------------


class FixedLists(Recommender):
    """Recommends a fixed ranking (minus seen items): a known input for the evaluate loop."""

    name = "fixed"

    def __init__(self, ranking: list[str]) -> None:
        self.ranking = ranking

    def fit(self, snapshot: GraphSnapshot) -> FixedLists:
        self.snapshot = snapshot
        return self

    def recommend(self, user_id: str, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]:
        u = self.snapshot.users.get(user_id)
        if u is None:
            return []
        seen = {self.snapshot.items.ids[i] for i in self.snapshot.user_items(u)}
        out = [i for i in self.ranking if i not in seen and i not in (exclude or ())]
        return [Recommendation(i, float(-r), self.name) for r, i in enumerate(out[:k])]

    def explain(self, user_id: str, item_id: str) -> list[Reason]:
        return []

    def save(self, directory: str | Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> FixedLists:
        raise NotImplementedError


def _tiny() -> GraphSnapshot:
    recs = GraphRecords()
    history = {"a": ["i1", "i2", "i3", "i4", "i5"], "b": ["i2", "i3", "i4", "i5", "i6"]}
    for u, items in history.items():
        for n, i in enumerate(items):
            recs.interactions.append(Interaction(u, i, 1.0, rating=float(n + 1), ts=1000 + n))
    recs.interactions.append(Interaction("c", "i1", 1.0))
    for i in ("i7", "i8"):
        recs.item_tags.append(ItemTag(i, "t", 1.0))
    return build_snapshot(recs)


def test_evaluate_scores_known_lists(tmp_path: Path) -> None:
    snap = _tiny()
    split = leave_last_out(snap, seed=0)  # holds out i5 for a and i6 for b
    held = {snap.users.ids[u]: [snap.items.ids[i] for i in v] for u, v in split.test.items()}
    assert held == {"a": ["i5"], "b": ["i6"]}
    # a sees [i6, i5, ...] -> hit at rank 2; b sees [i6, ...] after its training items are removed
    ev = evaluate(split, {"fixed": FixedLists(["i6", "i5", "i1", "i7"])}, k=2)
    r = ev.results[0]
    assert r.users == 2 and ev.held_out == 2
    assert r.metrics["ndcg@2"] == pytest.approx((1 / math.log2(3) + 1.0) / 2)
    assert r.metrics["recall@2"] == pytest.approx(1.0)
    assert r.metrics["precision@2"] == pytest.approx(0.5)
    assert r.metrics["mrr@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert r.metrics["rmse"] is None  # FixedLists predicts no ratings
    # lists: a -> [i6, i5]; b -> [i6, i1] (b trained on i2..i5): 3 of 8 items, overlap 1 of 2
    assert r.metrics["coverage"] == pytest.approx(3 / 8)
    assert r.metrics["personalisation"] == pytest.approx(0.5)

    text = to_table(ev)
    assert "ndcg@2" in text and "fixed" in text
    assert to_markdown(ev).startswith("| model |")
    data = json.loads(to_json(ev))
    assert data["results"][0]["metrics"]["recall@2"] == pytest.approx(1.0)
    rebuilt = to_markdown(Evaluation.from_dict(data)).splitlines()
    assert [row.split("|")[:-3] for row in rebuilt] == [row.split("|")[:-3] for row in to_markdown(ev).splitlines()]
    save_plot(ev, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_restricts_to_a_user_subset() -> None:
    snap = _tiny()
    split = leave_last_out(snap, seed=0)
    a = snap.users.index["a"]
    ev = evaluate(split, {"fixed": FixedLists(["i6", "i5"])}, k=2, users=[a])
    assert ev.users == 1
    assert ev.results[0].metrics["ndcg@2"] == pytest.approx(1 / math.log2(3))


# -- kgrec evaluate ----------------------------------------------------------------------------


@pytest.fixture()
def store_url(tmp_path: Path, synthetic) -> str:
    from kgrec.graph.store_factory import open_store

    url = f"memory://{tmp_path / 'graph'}"
    with open_store(url) as store:
        store.load(synthetic.records)
    return url


def test_cli_evaluate_writes_every_output(tmp_path: Path, store_url: str) -> None:
    from click.testing import CliRunner

    from kgrec.cli import main

    out = tmp_path / "out"
    args = ["evaluate", "--store", store_url, "--models", "popularity,itemcf", "--k", "5", "--seed", "3",
            "--markdown", str(out / "r.md"), "--json", str(out / "r.json"), "--plot", str(out / "r.png")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "ndcg@5" in result.output and "itemcf" in result.output
    data = json.loads((out / "r.json").read_text())
    assert [r["model"] for r in data["results"]] == ["popularity", "itemcf"]
    assert data["split"] == "random" and data["seed"] == 3 and data["k"] == 5
    assert all(0.0 <= r["metrics"]["ndcg@5"] <= 1.0 for r in data["results"])
    assert (out / "r.md").read_text().startswith("| model |")
    assert (out / "r.png").stat().st_size > 1000
    # the same command gives the same numbers
    again = CliRunner().invoke(main, [*args[:-6], "--json", str(out / "again.json")])
    assert again.exit_code == 0
    metrics_of = [r["metrics"] for r in json.loads((out / "again.json").read_text())["results"]]
    assert metrics_of == [r["metrics"] for r in data["results"]]


def test_cli_evaluate_reports_bad_input(store_url: str) -> None:
    from click.testing import CliRunner

    from kgrec.cli import main

    bad_model = CliRunner().invoke(main, ["evaluate", "--store", store_url, "--models", "nosuch"])
    assert bad_model.exit_code != 0 and "unknown recommender 'nosuch'" in bad_model.output
    assert "Traceback" not in bad_model.output
    too_strict = CliRunner().invoke(main, ["evaluate", "--store", store_url, "--min-interactions", "1000"])
    assert too_strict.exit_code != 0 and "lower --min-interactions" in too_strict.output


def test_cli_evaluate_refits_a_bundles_configuration(tmp_path: Path, snapshot: GraphSnapshot) -> None:
    from click.testing import CliRunner

    from kgrec.cli import main
    from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle

    models = fit_models(snapshot, ["itemcf"], seed=1, configs={"itemcf": {"neighbours": 7}})
    save_bundle(tmp_path / "b", snapshot, models, seed=1)
    result = CliRunner().invoke(main, ["evaluate", "--bundle", str(tmp_path / "b"), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert [r["model"] for r in json.loads((tmp_path / "r.json").read_text())["results"]] == ["itemcf", "popularity"]
    broken = CliRunner().invoke(main, ["evaluate", "--bundle", str(tmp_path)])
    assert broken.exit_code != 0 and "not a readable kgrec bundle" in broken.output


def test_rating_baseline_by_hand() -> None:
    from kgrec.recommenders.evaluation.offline_evaluation import bias_baseline

    snap = _tiny()
    split = leave_last_out(snap, seed=0)  # held out: a-i5 (rating 5), b-i6 (rating 5)
    # μ = 2.5; b_i5 = 1.5/11; b_a = 0.13636/14; b_b = -b_a; i6 unseen -> b_i6 = 0
    b_a = (-1.5 + 1.5 / 11 - 0.5 + 2 / 12 + 0.5 + 1.5 - 2 / 12) / 14
    pred_a, pred_b = 2.5 + b_a + 1.5 / 11, 2.5 - b_a
    rmse, mae = bias_baseline(split, set(split.test))
    assert rmse == pytest.approx(math.sqrt(((5 - pred_a) ** 2 + (5 - pred_b) ** 2) / 2))
    assert mae == pytest.approx(((5 - pred_a) + (5 - pred_b)) / 2)
    ev = evaluate(split, {"fixed": FixedLists(["i6"])}, k=2)
    assert any(n.startswith("rating baseline") for n in ev.notes)
