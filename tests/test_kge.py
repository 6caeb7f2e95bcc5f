"""Knowledge-graph embeddings: triples, numpy scores == PyKEEN's, torch-free artifact, the kge recommender."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.embeddings.artifact import KGEArtifact
from kgrec.embeddings.pykeen_setup import TrainConfig
from kgrec.embeddings.scoring import MODELS
from kgrec.embeddings.train import train_full
from kgrec.embeddings.triples import (
    FOLLOWS,
    HAS_TAG,
    INTERACTED,
    USES_TAG,
    TripleOptions,
    build_triples,
    inverse,
    split_interactions,
)
from kgrec.graph.records import Interaction, User
from kgrec.graph.snapshot import build_snapshot
from kgrec.loaders.synthetic import generate
from kgrec.recommenders.models.kge import KGE, KGEConfig
from kgrec.recommenders.ranking import top_k
from kgrec.recommenders.reason_paths import path_exists
from tests.torchless import run_without_torch

FAST = {"dim": 8, "epochs": 2, "batch_size": 256, "progress": False, "eval_every": 1}


@pytest.fixture(scope="module")
def tiny():
    return generate(users=30, items=40, seed=5, per_user=8, future_per_user=3)


@pytest.fixture(scope="module")
def tiny_snapshot(tiny):
    return build_snapshot(tiny.records)


# -- triples ----------------------------------------------------------------------------------
def test_triples_cover_each_relation_with_deterministic_labels(tiny_snapshot):
    t = build_triples(tiny_snapshot)
    rels = set(t.triples[:, 1].tolist())
    assert {INTERACTED, HAS_TAG, FOLLOWS, USES_TAG} <= rels
    inter = t.of([INTERACTED])
    assert len(inter) == tiny_snapshot.interactions.nnz
    assert all(h.startswith("user:") and tl.startswith("item:") for h, _, tl in inter.triples)
    assert all(tl.startswith("tag:") for tl in t.of([HAS_TAG]).triples[:, 2])
    again = build_triples(tiny_snapshot)
    assert np.array_equal(t.triples, again.triples)
    assert t.entities == again.entities == tuple(sorted(t.entities))
    assert len(t.of([USES_TAG])) == tiny_snapshot.user_tags.nnz


def test_triples_options_drop_threshold_inverse(tiny_snapshot):
    full = build_triples(tiny_snapshot)
    dropped = build_triples(tiny_snapshot, TripleOptions(drop=frozenset({FOLLOWS, USES_TAG})))
    assert not set(dropped.triples[:, 1].tolist()) & {FOLLOWS, USES_TAG}
    assert len(dropped.of([INTERACTED])) == len(full.of([INTERACTED]))

    w = tiny_snapshot.interactions.data
    cut = float(np.median(w))
    thr = build_triples(tiny_snapshot, TripleOptions(min_weight={INTERACTED: cut}))
    assert len(thr.of([INTERACTED])) == int((w >= cut).sum()) < len(full.of([INTERACTED]))
    assert (thr.of([INTERACTED]).weights >= cut).all()
    assert len(thr.of([HAS_TAG])) == len(full.of([HAS_TAG]))

    inv = build_triples(tiny_snapshot, TripleOptions(inverse=True))
    assert len(inv) == 2 * len(full)
    fwd = {(h, tl) for h, _, tl in full.of([INTERACTED]).triples}
    back = {(tl, h) for h, _, tl in inv.of([inverse(INTERACTED)]).triples}
    assert fwd == back


def test_triples_reject_unknown_relation():
    with pytest.raises(ValueError, match="unknown relation"):
        TripleOptions(drop=frozenset({"LIKES"}))


def test_split_holds_out_interactions_and_their_inverses(tiny_snapshot):
    t = build_triples(tiny_snapshot, TripleOptions(inverse=True))
    train, test, val = split_interactions(t, 0.2, 0.1, seed=1)
    assert set(test.triples[:, 1].tolist()) == {INTERACTED} == set(val.triples[:, 1].tolist())
    held = {(h, tl) for h, _, tl in np.concatenate([test.triples, val.triples])}
    train_fwd = {(h, tl) for h, _, tl in train.of([INTERACTED]).triples}
    train_inv = {(tl, h) for h, _, tl in train.of([inverse(INTERACTED)]).triples}
    assert not held & train_fwd
    assert not held & train_inv
    assert len(train.of([HAS_TAG])) == len(t.of([HAS_TAG]))


# -- numpy scoring == PyKEEN ------------------------------------------------------------------
LOOPS = [(m, "slcwa") for m in MODELS] + [(m, "shared") for m in ("DistMult", "ComplEx", "RotatE")]


@pytest.mark.parametrize(("model", "training_loop"), LOOPS)
def test_numpy_scores_equal_pykeen_score_hrt(tiny_snapshot, model, training_loop):
    """The numpy scores equal PyKEEN's, for PyKEEN's own interactions (slcwa) and for the
    matrix-product twins the shared-negatives loop installs."""
    import torch

    loop = {"training_loop": "slcwa", "loss": None, "num_negatives": 4} if training_loop == "slcwa" else {
        "training_loop": "shared", "num_negatives": 16}
    res = train_full(tiny_snapshot, TrainConfig(model=model, test_fraction=0.1, validation_fraction=0.1,
                                                **FAST, **loop))
    assert res.artifact.metrics["epochs_run"] == FAST["epochs"]
    art = res.artifact
    assert set(art.metrics) >= {"tail.mrr", "tail.hits_at_1", "tail.hits_at_3", "tail.hits_at_10", "both.mrr"}
    assert art.metrics["evaluated_relation"] == INTERACTED and art.metrics["filtered"] is True
    mapped = res.triples_factory.mapped_triples
    rng = np.random.default_rng(0)
    hrt = torch.as_tensor(np.stack([
        rng.integers(0, len(art.entities), 200), rng.integers(0, len(art.relations), 200),
        rng.integers(0, len(art.entities), 200)], axis=1))
    hrt = torch.cat([mapped[:50], hrt])
    res.model.eval()
    with torch.no_grad():
        expected = res.model.score_hrt(hrt.to(res.model.device)).cpu().numpy().ravel()
    h, r, t = (hrt[:, k].numpy() for k in range(3))
    got = art.interaction(art.entity_vectors[h], art.relation_vectors[r], art.entity_vectors[t])
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    if model in ("ComplEx", "RotatE"):
        assert np.iscomplexobj(art.entity_vectors)


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown kge model"):
        TrainConfig(model="Nope")
    with pytest.raises(ValueError, match="training loop"):
        TrainConfig(training_loop="x")
    with pytest.raises(ValueError, match="head_fraction"):
        TrainConfig(head_fraction=-0.1)
    with pytest.raises(ValueError, match="unknown kge model"):
        KGEConfig(model="Nope")
    assert KGEConfig(drop=["FOLLOWS"]).drop == ("FOLLOWS",)


# -- artifact ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tiny_snapshot) -> KGE:
    return KGE(KGEConfig(model="RotatE", training_loop="slcwa", loss=None, test_fraction=0.1,
                         validation_fraction=0.0, **FAST)).fit(tiny_snapshot)


def test_artifact_roundtrip(fitted, tmp_path):
    fitted.artifact.save(tmp_path / "a")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["config.json", "entities.json", "entity_vectors.npy", "metrics.json", "relation_vectors.npy",
                     "relations.json", "snapshot.json"]
    back = KGEArtifact.load(tmp_path / "a")
    np.testing.assert_array_equal(back.entity_vectors, fitted.artifact.entity_vectors)
    np.testing.assert_array_equal(back.relation_vectors, fitted.artifact.relation_vectors)
    assert back.entities == fitted.artifact.entities and back.fingerprint == fitted.snapshot.fingerprint
    assert back.metrics == fitted.artifact.metrics


def test_artifact_vectors_are_mapped_read_only_and_format_1_is_refused(fitted, tiny_snapshot, tmp_path):
    fitted.save(tmp_path / "m")
    back = KGEArtifact.load(tmp_path / "m" / "artifact")
    assert back.entity_vectors.dtype in (np.float32, np.complex64) and not back.entity_vectors.flags.writeable
    model = KGE.load(tmp_path / "m", tiny_snapshot)  # the per-item vectors are saved, not recomputed
    assert not model._items.flags.writeable and not model._items_unit.flags.writeable
    np.testing.assert_array_equal(model._items_unit, fitted._items_unit)
    (tmp_path / "m" / "artifact" / "vectors.safetensors").write_bytes(b"old")
    with pytest.raises(ValueError, match=r"format 1.*retrain with kgrec train"):
        KGEArtifact.load(tmp_path / "m" / "artifact")


def test_artifact_load_refuses_a_non_artifact(tmp_path):
    (tmp_path / "entities.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match="not a kge artifact"):
        KGEArtifact.load(tmp_path)


def test_saved_model_loads_and_serves_where_torch_cannot_be_imported(fitted, tiny_snapshot, tmp_path):
    fitted.save(tmp_path / "model")
    tiny_snapshot.save(tmp_path / "snap")
    user = tiny_snapshot.users.ids[0]
    expected = [r.item_id for r in fitted.recommend(user, 5)]
    out = run_without_torch(f"""
        from kgrec.embeddings.artifact import KGEArtifact
        from kgrec.graph.snapshot import GraphSnapshot
        from kgrec.recommenders.models.kge import KGE
        a = KGEArtifact.load({str(tmp_path / "model" / "artifact")!r})
        m = KGE.load({str(tmp_path / "model")!r}, GraphSnapshot.load({str(tmp_path / "snap")!r}))
        print(",".join(r.item_id for r in m.recommend({user!r}, 5)))
        assert "pykeen" not in sys.modules
    """)
    assert out.strip().split(",") == expected


# -- the recommender --------------------------------------------------------------------------
def test_recommend_excludes_seen_and_unknown_user_gets_nothing(fitted, tiny_snapshot):
    user = tiny_snapshot.users.ids[3]
    seen = {tiny_snapshot.items.ids[j] for j in tiny_snapshot.user_items(3)}
    recs = fitted.recommend(user, 10)
    assert len(recs) == 10 and not {r.item_id for r in recs} & seen
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    assert all(r.source == "kge" for r in recs)
    assert fitted.recommend("nobody", 10) == []
    assert not {r.item_id for r in fitted.recommend(user, 10, exclude=[recs[0].item_id])} & {recs[0].item_id}


def test_scores_are_the_models_interaction(fitted, tiny_snapshot):
    a = fitted.artifact
    u = tiny_snapshot.users.ids[2]
    rec = fitted.recommend(u, 1)[0]
    h = a.entity(f"user:{u}")
    direct = a.interaction(h[None, :], a.relation(INTERACTED)[None, :], a.entity(f"item:{rec.item_id}")[None, :])
    assert rec.score == pytest.approx(float(direct[0]), abs=1e-5)


def test_explanations_are_evidence_on_real_paths(fitted, tiny_snapshot):
    user = tiny_snapshot.users.ids[1]
    item = fitted.recommend(user, 1)[0].item_id
    reasons = fitted.explain(user, item)
    assert reasons and all(r.kind == "evidence" for r in reasons)
    assert all(path_exists(tiny_snapshot, r) for r in reasons)
    assert reasons[0].nodes[0].id == user
    assert all("$" in r.cypher and "{" not in r.text[:0] for r in reasons)


def test_similar_items(fitted, tiny_snapshot):
    item = tiny_snapshot.items.ids[0]
    sims = fitted.similar_items(item, 5)
    assert len(sims) == 5 and item not in {s.item_id for s in sims}
    assert [s.score for s in sims] == sorted((s.score for s in sims), reverse=True)
    assert all(-1.0 - 1e-9 <= s.score <= 1.0 + 1e-9 for s in sims)
    assert fitted.similar_items("no-such-item", 5) == []


def test_new_user_is_folded_in_from_a_newer_snapshot(fitted, tiny, tmp_path):
    records = tiny.records
    liked = [records.items[0].id, records.items[1].id, records.items[2].id]
    records2 = type(records)(
        users=[*records.users, User("newcomer")], items=records.items, tags=records.tags,
        interactions=[*records.interactions, *(Interaction("newcomer", i, 2.0) for i in liked)],
        taggings=records.taggings, item_tags=records.item_tags, follows=records.follows, facts=records.facts,
    )
    newer = build_snapshot(records2)
    fitted.save(tmp_path / "m")
    with pytest.raises(ValueError, match="snapshot"):
        KGE.load(tmp_path / "m", newer)
    served = KGE.load(tmp_path / "m", newer, strict=False)
    recs = served.recommend("newcomer", 5)
    assert len(recs) == 5 and not {r.item_id for r in recs} & set(liked)
    scores = fitted.score_history({i: 1.0 for i in liked})
    scores[[fitted.snapshot.items.index[i] for i in liked]] = -np.inf
    assert [fitted.snapshot.items.ids[j] for j in top_k(scores, 5, positive_only=False)] == [r.item_id for r in recs]
    assert fitted.score_history({"unknown-item": 1.0}) is None


def test_kge_beats_random_on_the_planted_graph(synthetic, snapshot):
    """The shipped training (RotatE, shared negatives, softmax cross-entropy), scaled to the small
    graph (dim 32, 64 negatives per batch of 256), must reach recall@10 against the planted
    future items of at least 3x random's expectation (10 / unseen items per user)."""
    model = KGE(KGEConfig(dim=32, epochs=20, batch_size=256, num_negatives=64, test_fraction=0.0,
                          progress=False)).fit(snapshot)
    assert (model.config.model, model.config.training_loop, model.config.loss) == ("RotatE", "shared", "crossentropy")
    recalls, expected_random = [], []
    for u, future in synthetic.truth.future.items():
        got = {r.item_id for r in model.recommend(u, 10)}
        recalls.append(len(got & set(future)) / len(future))
        unseen = len(snapshot.items) - len(snapshot.user_items(snapshot.users.index[u]))
        expected_random.append(10 / unseen)
    print(f"kge recall@10 {np.mean(recalls):.4f} = {np.mean(recalls) / np.mean(expected_random):.1f}x random")
    assert np.mean(recalls) >= 3 * np.mean(expected_random), (np.mean(recalls), np.mean(expected_random))


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_train_kge_writes_a_bundle_that_serves(tiny, tmp_path):
    from click.testing import CliRunner

    from kgrec.cli import main
    from kgrec.graph.store_factory import open_store
    from kgrec.recommenders.bundle.model_bundle import Bundle

    url = f"memory://{tmp_path / 'store'}"
    with open_store(url) as store:
        store.load(tiny.records)
    out = tmp_path / "bundle"
    args = ["train", "--store", url, "--models", "kge", "--kge-model", "TransE", "--dim", "8", "--epochs", "2",
            "--kge-loss", "softplus", "--kge-training-loop", "shared", "--kge-negatives", "16",
            "--set", "kge.progress=false", "--no-tune", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    bundle = Bundle.load(out)
    kge = bundle.models["kge"]
    assert kge.artifact.interaction.model == "TransE" and kge.artifact.dim == 8
    assert kge.artifact.config["epochs"] == 2 and "tail.mrr" in kge.artifact.metrics
    assert (kge.artifact.config["training_loop"], kge.artifact.config["num_negatives"]) == ("shared", 16)
    user = tiny.records.users[0].id
    from kgrec.recommenders.serving.query import Query
    from kgrec.recommenders.serving.server import Server

    assert [r.source for r in Server.from_bundle(bundle).recommend(Query(user, 5))][:1] == ["kge"]
    rec = CliRunner().invoke(main, ["recommend", "--bundle", str(out), "--user", user, "--model", "kge",
                                    "--format", "jsonl"])
    assert rec.exit_code == 0, rec.output
    assert '"kge"' in rec.output

    bad = CliRunner().invoke(main, ["train", "--store", url, "--models", "itemcf", "--dim", "8",
                                    "--out", str(tmp_path / "b2")])
    assert bad.exit_code != 0 and "kge" in bad.output


def test_api_serves_a_kge_bundle(fitted, tiny_snapshot, tmp_path):
    """The Flask API loads a bundle holding kge and serves its recommendations, similar items
    and evidence reasons."""
    from kgrec.api.app import create_app
    from kgrec.api.settings import Settings
    from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle
    from kgrec.recommenders.serving.server_loading import load_server

    models = {"kge": fitted, **fit_models(tiny_snapshot, ["popularity"], seed=1)}
    save_bundle(tmp_path / "bundle", tiny_snapshot, models)
    server = load_server(tmp_path / "bundle", default_model="kge")
    app = create_app(Settings(bundle=str(tmp_path / "bundle"), store=f"memory://{tmp_path / 'store'}"), server)
    client = app.test_client()
    user = tiny_snapshot.users.ids[4]
    body = client.get(f"/v1/users/{user}/recommendations?k=5&explain=true").get_json()
    recs = body["recommendations"]
    assert body["model"] == "kge" and {r["source"] for r in recs} == {"kge"}
    assert [r["item"] for r in recs] == [r.item_id for r in fitted.recommend(user, 5)]
    assert all(reason["kind"] == "evidence" for r in recs for reason in r["reasons"])
    similar = client.get(f"/v1/items/{tiny_snapshot.items.ids[0]}/similar?k=3").get_json()["similar"]
    assert [s["item"] for s in similar] == [r.item_id for r in fitted.similar_items(tiny_snapshot.items.ids[0], 3)]
    expl = client.get(f"/v1/users/{user}/recommendations/{recs[0]['item']}/explanation")
    assert expl.status_code == 200 and "evidence" in expl.get_data(as_text=True)
