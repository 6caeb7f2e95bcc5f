"""The multi-task network: every head scores its own behaviour's columns, numpy serving equals the
torch network, heads survive save/load, and a graph without a second behaviour is not its graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.models._multitask_training import MultiTaskNet, MultiTaskOptions, input_blocks
from kgrec.recommenders.models.multitask import MultiTask, behaviours

SMALL = {"hidden_dim": 32, "latent_dim": 8, "epochs": 15, "batch_size": 32, "threads": 1}


@pytest.fixture(scope="module")
def fitted(snapshot: GraphSnapshot) -> MultiTask:
    return MultiTask(seed=3, **SMALL).fit(snapshot)


def test_each_head_scores_its_behaviour(fitted: MultiTask, snapshot: GraphSnapshot) -> None:
    assert fitted._used == ("interactions", "tagged", "tags")
    x = behaviours(snapshot)
    scored = 0
    for user in snapshot.users.ids[::7]:
        for task in fitted._used:
            scores = fitted.task_scores(user, task)
            assert scores is not None and scores.shape == (x[task].shape[1],)
            modelled = np.zeros(len(scores), dtype=bool)
            modelled[fitted._cols[task]] = True
            assert np.isfinite(scores[modelled]).all() and np.isneginf(scores[~modelled]).all()
            assert len(np.unique(scores[modelled])) > 1  # a ranking, not a constant
            scored += 1
    assert scored
    assert fitted.task_scores("no-such-user", "tags") is None
    assert fitted.task_scores(snapshot.users.ids[0], "no-such-task") is None
    np.testing.assert_array_equal(fitted.score_user(snapshot.users.ids[0]),
                                  fitted.task_scores(snapshot.users.ids[0], "interactions"))


def test_numpy_serving_equals_the_torch_network(fitted: MultiTask, snapshot: GraphSnapshot) -> None:
    w = fitted._w
    x = behaviours(snapshot)
    xs = [x[t][:, fitted._cols[t]] for t in fitted._used]
    opts = MultiTaskOptions(hidden_dim=SMALL["hidden_dim"], latent_dim=SMALL["latent_dim"])
    net = MultiTaskNet(sum(m.shape[1] for m in xs), [m.shape[1] for m in xs], opts).eval()
    k = SMALL["latent_dim"]
    with torch.no_grad():
        net.encoder.weight.copy_(torch.from_numpy(w["enc_w"]))
        net.encoder_bias.copy_(torch.from_numpy(w["enc_b"]))
        net.to_latent.weight[:k] = torch.from_numpy(w["mu_w"].T)
        net.to_latent.bias[:k] = torch.from_numpy(w["mu_b"])
        net.decoder.weight.copy_(torch.from_numpy(w["dec_w"].T))
        net.decoder.bias.copy_(torch.from_numpy(w["dec_b"]))
        for head, t in zip(net.heads, fitted._used, strict=True):
            head.weight.copy_(torch.from_numpy(w[f"out_w_{t}"].T))
            head.bias.copy_(torch.from_numpy(w[f"out_b_{t}"]))
    users = np.arange(0, len(snapshot.users), 9)
    with torch.no_grad():
        logits = net(input_blocks([m[users] for m in xs]))[0]
    for n, u in enumerate(users.tolist()):
        for h, t in enumerate(fitted._used):
            served = fitted.task_scores(snapshot.users.ids[u], t)
            np.testing.assert_allclose(served[fitted._cols[t]], logits[h][n].numpy(), rtol=1e-4, atol=1e-4)


def test_heads_survive_save_and_load(fitted: MultiTask, snapshot: GraphSnapshot, tmp_path) -> None:
    fitted.save(tmp_path / "m")
    loaded = MultiTask.load(tmp_path / "m", snapshot)
    assert loaded._used == fitted._used
    for user in snapshot.users.ids[::11]:
        for task in fitted._used:
            np.testing.assert_array_equal(loaded.task_scores(user, task), fitted.task_scores(user, task))


def test_one_behaviour_is_the_mult_vae_network(snapshot: GraphSnapshot) -> None:
    single = MultiTask(seed=3, tasks=("interactions",), **{**SMALL, "epochs": 2}).fit(snapshot)
    assert single._used == ("interactions",) and set(single._w) == {
        "enc_w", "enc_b", "mu_w", "mu_b", "dec_w", "dec_b", "out_w_interactions", "out_b_interactions"}
    assert single.recommend(snapshot.users.ids[0], 5)


def test_it_needs_a_second_behaviour_and_serves_interactions_first(snapshot: GraphSnapshot) -> None:
    bare = snapshot.with_interactions(snapshot.interactions, snapshot.taggings[:0])
    assert MultiTask.applies_to(snapshot) and not MultiTask.applies_to(bare)
    with pytest.raises(ValueError, match="must start with 'interactions'"):
        MultiTask(tasks=("tags", "interactions")).fit(snapshot)
