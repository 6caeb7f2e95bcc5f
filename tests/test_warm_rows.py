"""The row matching and initialisation behind warm starts (numpy only, no training)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kgrec.embeddings.warm_init import kge_initial_vectors, match_rows, name_aliases, normalised_name
from kgrec.recommenders.models.warm_rows import (
    als_initial_factors,
    co_occurrence,
    propagate_mean,
    solve_rows,
    vae_initial_state,
    vae_serving,
    vae_state,
)


def test_rows_match_by_label_and_alias_never_by_position() -> None:
    new, old = match_rows(["a", "b", "c"], ["c", "x", "a", "z"], aliases={"z": "b"})
    assert new.tolist() == [0, 2, 3] and old.tolist() == [2, 0, 1]
    assert normalised_name("Sci-Fi") == normalised_name("sci fi") == normalised_name("genre:SCI_FI") == "sci fi"
    old = {"tag:1": "Hip-Hop", "tag:2": "rock", "tag:3": "Rock"}
    # "rock" is ambiguous on the old side: no match
    assert name_aliases(old, {"tag:a": "hip hop", "tag:b": "ROCK"}) == {"tag:a": "tag:1"}


def test_new_rows_take_the_mean_of_known_neighbours_in_rounds() -> None:
    v = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    adjacency = sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 0, 1, 0], [1, 1, 0, 1], [0, 0, 1, 0]], dtype=float))
    out, known = propagate_mean(v, np.array([True, True, False, False]), adjacency)
    assert known.all() and np.allclose(out[2], [2, 0]) and np.allclose(out[3], [2, 0])
    isolated, known = propagate_mean(v, np.array([True, True, False, False]), sp.csr_matrix((4, 4)))
    assert not known[2:].any() and np.allclose(isolated, v)


def test_a_new_rotate_item_is_its_users_rotation_with_the_usual_length() -> None:
    rng = np.random.default_rng(0)
    r = np.exp(1j * rng.uniform(0, 6, 4)).astype(np.complex64)
    users = (rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))).astype(np.complex64)
    old_entities = ["item:1", "item:9", "user:u", "user:v", "user:w"]
    old_vectors = np.stack([users[0] * r, 3 * users[1] * r, *users])
    triples = np.array([["user:u", "INTERACTED", "item:1"], ["user:u", "INTERACTED", "item:2"],
                        ["user:v", "INTERACTED", "item:9"]])
    new_entities = ["item:1", "item:2", "item:9", "user:u", "user:v", "user:w"]
    ent, _, report, rel_report = kge_initial_vectors(
        old_entities, old_vectors, ["INTERACTED"], r[None], new_entities, ["INTERACTED"], triples, "RotatE",
        np.zeros((6, 4), np.complex64), np.zeros((1, 4), np.complex64))
    assert report.as_dict() == {"copied": 5, "derived": 1, "default": 0} and rel_report.copied == 1
    np.testing.assert_allclose(ent[[0, 2, 3, 4, 5]], old_vectors[[0, 1, 2, 3, 4]])
    known_norms = np.linalg.norm(old_vectors[:2], axis=1)
    assert np.isclose(np.linalg.norm(ent[1]), np.median(known_norms), rtol=1e-5)  # rescaled to the items' median
    direction = ent[1] - (old_vectors[:2] - np.stack([users[0] * r, users[1] * r])).mean(axis=0)
    assert np.abs(np.vdot(direction, users[0] * r)) > 0  # derived from the user who chose it


def test_multvae_rows_follow_item_ids_and_new_items_their_co_items() -> None:
    h, k = 3, 2
    fresh = {"encoder.weight": np.zeros((3, h), np.float32), "encoder_bias": np.zeros(h, np.float32),
             "to_latent.weight": np.ones((2 * k, h), np.float32), "to_latent.bias": np.ones(2 * k, np.float32),
             "decoder.weight": np.zeros((h, k), np.float32), "decoder.bias": np.zeros(h, np.float32),
             "to_items.weight": np.zeros((3, h), np.float32), "to_items.bias": np.zeros(3, np.float32)}
    old_serving = {"enc_w": np.arange(6.0).reshape(2, h), "enc_b": np.full(h, 7.0), "mu_w": np.full((h, k), 2.0),
                   "mu_b": np.full(k, 2.0), "dec_w": np.full((k, h), 3.0), "dec_b": np.full(h, 3.0),
                   "out_w": (np.arange(6.0).reshape(2, h) + 10).T, "out_b": np.array([5.0, 7.0])}
    old = vae_state(old_serving, fresh)
    assert np.allclose(old["to_latent.weight"][k:], 1.0)  # no log-variance half saved: the fresh one
    x = sp.csr_matrix(np.array([[1, 1, 1], [0, 1, 1], [0, 1, 1]], dtype=float))  # columns b, a, c: c is with a 3x, b 1x
    state, report = vae_initial_state(old, ["a", "b"], ["b", "a", "c"], fresh, co_occurrence(x))
    assert report.as_dict() == {"copied": 2, "derived": 1, "default": 0}
    np.testing.assert_allclose(state["encoder.weight"][:2], old_serving["enc_w"][[1, 0]])
    np.testing.assert_allclose(state["to_items.bias"], [7.0, 5.0, (7.0 * 1 + 5.0 * 3) / 4])
    serving = vae_serving(state)
    np.testing.assert_allclose(serving["enc_b"], 7.0)
    np.testing.assert_allclose(serving["out_w"][:, :2], old_serving["out_w"][:, [1, 0]])
    assert serving["lv_w"].shape == (h, k)


def test_als_starts_from_one_exact_half_step() -> None:
    rng = np.random.default_rng(1)
    conf = sp.csr_matrix((rng.random((30, 12)) < 0.3).astype(np.float32))
    items = rng.normal(size=(10, 4))
    users = solve_rows(conf[:, :10], items, 0.05, 10.0)
    u, i, report = als_initial_factors([str(k) for k in range(28)], users[:28], [str(k) for k in range(10)], items,
                                       [str(k) for k in range(30)], [str(k) for k in range(12)], conf, 0.05, 10.0)
    assert u.shape == (30, 4) and i.shape == (12, 4) and u.dtype == np.float32
    np.testing.assert_allclose(i[:10], items, rtol=1e-5, atol=1e-5)
    assert report["items"]["copied"] == 10 and report["items"]["derived"] == 2
    assert report["users"] == {"copied": 28, "derived": 2, "default": 0}
    np.testing.assert_allclose(u, solve_rows(conf, i.astype(np.float64), 0.05, 10.0), rtol=1e-4, atol=1e-4)
