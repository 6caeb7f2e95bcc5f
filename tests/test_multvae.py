"""Mult-VAE: numpy serving equals the trained torch network, gradient × input equals
autograd's, training is seeded, a saved model serves without torch, histories fold in."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import optuna
import pytest
import scipy.sparse as sp
import torch

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.models._vae_training import (
    Batch,
    MultVAENet,
    TrainOptions,
    hold_out,
    train_multvae,
    validation_ndcg,
)
from kgrec.recommenders.models.multvae import MultVAE
from tests.torchless import run_without_torch

#: Small networks train fastest on one thread (torch's threads contend on a busy machine).
SMALL = {"hidden_dim": 48, "latent_dim": 16, "epochs": 30, "batch_size": 32, "device": "cpu", "threads": 1,
         "validation_fraction": 0.2}


@pytest.fixture(scope="module")
def fitted(snapshot: GraphSnapshot) -> MultVAE:
    return MultVAE(**SMALL).fit(snapshot)


def _network(model: MultVAE) -> MultVAENet:
    """A float64 torch network carrying the served weights (log-variance rows left at init)."""
    w = model._w
    k = w["mu_w"].shape[1]
    net = MultVAENet(len(model._keep), w["enc_w"].shape[1], k, 0.5).double().eval()
    with torch.no_grad():
        net.encoder.weight.copy_(torch.from_numpy(w["enc_w"]))
        net.encoder_bias.copy_(torch.from_numpy(w["enc_b"]))
        net.to_latent.weight[:k] = torch.from_numpy(w["mu_w"].T)
        net.to_latent.bias[:k] = torch.from_numpy(w["mu_b"])
        for name, layer in (("dec", net.decoder), ("out", net.to_items)):
            layer.weight.copy_(torch.from_numpy(w[f"{name}_w"].T))
            layer.bias.copy_(torch.from_numpy(w[f"{name}_b"]))
    return net


def _batch(model: MultVAE, snapshot: GraphSnapshot, u: int) -> Batch:
    pos = model._position[snapshot.user_items(u)]
    pos = np.sort(pos[pos >= 0])
    row = sp.csr_matrix((np.ones(len(pos)), (np.zeros(len(pos), dtype=int), pos)), shape=(1, len(model._keep)))
    batch = Batch.of(row)
    return replace(batch, values=batch.values.double())


def test_numpy_scores_equal_the_torch_network(fitted: MultVAE, snapshot: GraphSnapshot) -> None:
    net = _network(fitted)
    for u in range(0, len(snapshot.users), 17):
        with torch.no_grad():
            logits = net(_batch(fitted, snapshot, u))[0][0].numpy()
        served = fitted.score_user(snapshot.users.ids[u])
        np.testing.assert_allclose(served[fitted._keep], logits, rtol=1e-6, atol=1e-6)
        assert np.isneginf(np.delete(served, fitted._keep)).all()


def test_gradient_x_input_equals_autograd(fitted: MultVAE, snapshot: GraphSnapshot) -> None:
    net = _network(fitted)
    u = 11
    i = fitted.recommend(snapshot.users.ids[u], k=1)[0].item_id
    col = fitted._position[snapshot.items.index[i]]
    batch = _batch(fitted, snapshot, u)
    normalised = (batch.values / batch.values.norm()).requires_grad_(True)
    hidden = torch.tanh(net.encoder(batch.items, batch.offsets, per_sample_weights=normalised) + net.encoder_bias)
    mu = net.to_latent(hidden)[:, : net.latent_dim]
    net.to_items(torch.tanh(net.decoder(mu)))[0, col].backward()
    expected = dict(zip(batch.items.tolist(), (normalised * normalised.grad).detach().numpy(), strict=True))
    items, shares = fitted.gradient_x_input(u, snapshot.items.index[i])
    np.testing.assert_allclose(shares, [expected[p] for p in fitted._position[items]], rtol=1e-6, atol=1e-9)
    reasons = fitted.explain(snapshot.users.ids[u], i)
    assert [r.contribution for r in reasons] == pytest.approx(sorted(shares, reverse=True)[:3])
    assert all(r.kind == "evidence" for r in reasons)


def test_training_is_deterministic_under_a_seed(snapshot: GraphSnapshot) -> None:
    x = snapshot.interactions.tocsr()
    opts = TrainOptions(hidden_dim=32, latent_dim=8, dropout=0.5, epochs=3, batch_size=40, lr=1e-3,
                        weight_decay=0.0, anneal_cap=0.2, device="cpu", seed=5, threads=1)
    a, b = train_multvae(x, opts)[0].weights(), train_multvae(x, opts)[0].weights()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = train_multvae(x, replace(opts, seed=6))[0].weights()
    assert not np.array_equal(a["out_w"], c["out_w"])


def test_fold_in_matches_recommend_and_ignores_dislikes(fitted: MultVAE, snapshot: GraphSnapshot) -> None:
    u = 4
    user = snapshot.users.ids[u]
    history = {snapshot.items.ids[j]: 2.0 for j in snapshot.user_items(u)}
    np.testing.assert_allclose(fitted.score_history(history), fitted.score_user(user), rtol=1e-6)
    disliked = next(i for i in snapshot.items.ids if i not in history)
    np.testing.assert_allclose(fitted.score_history({**history, disliked: -1.0}), fitted.score_user(user), rtol=1e-6)
    assert fitted.score_history({disliked: -1.0}) is None


def test_saved_model_serves_where_torch_cannot_be_imported(fitted: MultVAE, snapshot: GraphSnapshot,
                                                           tmp_path) -> None:
    fitted.save(tmp_path / "model")
    snapshot.save(tmp_path / "snap")
    user = snapshot.users.ids[0]
    expected = [r.item_id for r in fitted.recommend(user, 5)]
    out = run_without_torch(f"""
        from kgrec.graph.snapshot import GraphSnapshot
        from kgrec.recommenders.models.multvae import MultVAE
        m = MultVAE.load({str(tmp_path / "model")!r}, GraphSnapshot.load({str(tmp_path / "snap")!r}))
        recs = m.recommend({user!r}, 5)
        assert m.explain({user!r}, recs[0].item_id)
        print(",".join(r.item_id for r in recs))
    """)
    assert out.strip().split(",") == expected


def test_bad_options_are_refused(snapshot: GraphSnapshot) -> None:
    with pytest.raises(ValueError, match="dropout"):
        MultVAE(dropout=1.0).fit(snapshot)
    with pytest.raises(ValueError, match="latent_dim"):
        MultVAE(latent_dim=0).fit(snapshot)


def test_early_stopping_keeps_the_best_weights_and_stops_after_patience(snapshot: GraphSnapshot) -> None:
    x = sp.csr_matrix(snapshot.interactions, copy=True)
    x.data[:] = 1.0
    cut, holdout = hold_out(x, 0.2, 60, seed=3)
    assert cut.nnz + holdout.relevant.sum() == x.nnz
    for r, u in enumerate(holdout.users.tolist()):
        assert not cut[u].toarray()[0, holdout.relevant[r]].any()
    opts = TrainOptions(hidden_dim=32, latent_dim=8, dropout=0.5, epochs=40, batch_size=30, lr=3e-3,
                        weight_decay=0.0, anneal_cap=0.2, device="cpu", seed=5, eval_every=2, patience=100,
                        threads=1)
    net, curve = train_multvae(cut, opts, holdout)
    values = [v for _, v in curve]
    assert [e for e, _ in curve] == list(range(2, 41, 2))
    assert validation_ndcg(net, cut, holdout, torch.device("cpu")) == pytest.approx(max(values), abs=1e-9)
    stop = next(i for i in range(1, len(values)) if values[i] <= max(values[:i]))
    _, early = train_multvae(cut, replace(opts, patience=1), holdout)
    assert early == curve[: stop + 1]


def test_search_space_suggests_the_key_knobs() -> None:
    chosen = {"latent_dim": 64, "dropout": 0.3, "anneal_cap": 0.1, "lr": 1e-3, "epochs": 50}
    assert MultVAE.search_space(optuna.trial.FixedTrial(chosen), None) == chosen


def test_fit_trains_on_everything_for_the_epochs_chosen_on_validation(fitted: MultVAE,
                                                                      snapshot: GraphSnapshot) -> None:
    assert fitted.curve and fitted.best_epoch == max(fitted.curve, key=lambda c: c[1])[0]
    again = MultVAE(**{**SMALL, "epochs": fitted.best_epoch, "validation_fraction": 0.0}).fit(snapshot)
    assert again.curve == [] and again.best_epoch is None
    assert all(np.array_equal(fitted._w[k], again._w[k]) for k in fitted._w)
