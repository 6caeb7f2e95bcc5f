"""The matrix-product interactions equal PyKEEN's own, and the shared-negatives loop learns."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from pykeen.models import ComplEx, DistMult, RotatE  # noqa: E402
from pykeen.triples import TriplesFactory  # noqa: E402

from kgrec.embeddings.interactions import MatmulRotatE, use_matmul_interaction  # noqa: E402
from kgrec.embeddings.shared_negatives import SharedNegativesTrainingLoop  # noqa: E402

PYKEEN_MODELS = {"DistMult": DistMult, "ComplEx": ComplEx, "RotatE": RotatE}


def _factory(n: int = 60, seed: int = 0) -> TriplesFactory:
    rng = np.random.default_rng(seed)
    rows = [[f"e{h}", rel, f"e{t}"] for rel in ("a", "b") for h, t in rng.integers(0, n, (150, 2)) if h != t]
    return TriplesFactory.from_labeled_triples(np.array(rows, dtype=str))


@pytest.mark.parametrize("name", sorted(PYKEEN_MODELS))
def test_matmul_interaction_scores_equal_pykeen_in_every_shape(name):
    """score_hrt (row by row), score_t and score_h against a candidate list and against all
    entities: the shapes PyKEEN training and evaluation call with."""
    tf = _factory()
    model = PYKEEN_MODELS[name](triples_factory=tf, embedding_dim=16, random_seed=3)
    # Spread the vectors away from the initialiser's scale so cancellation would show.
    with torch.no_grad():
        for p in model.entity_representations[0].parameters():
            p.mul_(3.0)
    batch = tf.mapped_triples[:40]
    candidates = torch.arange(0, tf.num_entities, 3)
    calls = {
        "hrt": lambda m: m.score_hrt(batch),
        "t_candidates": lambda m: m.score_t(batch[:, :2], tails=candidates),
        "h_candidates": lambda m: m.score_h(batch[:, 1:], heads=candidates),
        "t_all": lambda m: m.score_t(batch[:, :2]),
        "h_all": lambda m: m.score_h(batch[:, 1:]),
    }
    model.eval()
    with torch.no_grad():
        expected = {k: f(model) for k, f in calls.items()}
        assert use_matmul_interaction(model, name)
        got = {k: f(model) for k, f in calls.items()}
    for k in calls:
        assert got[k].shape == expected[k].shape, k
        np.testing.assert_allclose(got[k].numpy(), expected[k].numpy(), rtol=1e-5, atol=2e-5, err_msg=k)


def test_transe_keeps_pykeen_interaction_and_rotate_rejects_l1():
    from pykeen.models import TransE

    model = TransE(triples_factory=_factory(), embedding_dim=4, random_seed=0)
    before = model.interaction
    assert use_matmul_interaction(model, "TransE") is False and model.interaction is before
    with pytest.raises(ValueError, match="L2"):
        MatmulRotatE(p=1)


@pytest.mark.parametrize("head_fraction", [0.0, 0.5, 1.0])
def test_shared_negatives_loop_separates_true_triples_from_random_ones(head_fraction):
    """After training, true triples outscore random ones for most rows (AUC well above 0.5),
    whether the batch corrupts tails, heads or both."""
    from pykeen.losses import CrossEntropyLoss

    tf = _factory(n=40, seed=1)
    model = RotatE(triples_factory=tf, embedding_dim=16, loss=CrossEntropyLoss(), random_seed=0)
    use_matmul_interaction(model, "RotatE")
    optimizer = torch.optim.Adam(model.get_grad_params(), lr=0.05)
    loop = SharedNegativesTrainingLoop(model=model, triples_factory=tf, optimizer=optimizer,
                                       num_shared_negatives=32, head_fraction=head_fraction)
    losses = loop.train(triples_factory=tf, num_epochs=30, batch_size=64, use_tqdm=False)
    assert losses[-1] < 0.8 * losses[0]
    gen = torch.Generator().manual_seed(0)
    fake = torch.stack([torch.randint(tf.num_entities, (len(tf.mapped_triples),), generator=gen),
                        tf.mapped_triples[:, 1],
                        torch.randint(tf.num_entities, (len(tf.mapped_triples),), generator=gen)], dim=1)
    model.eval()
    with torch.no_grad():
        true_scores = model.score_hrt(tf.mapped_triples).ravel()
        fake_scores = model.score_hrt(fake).ravel()
    auc = (true_scores[:, None] > fake_scores[None, :]).float().mean().item()
    assert auc > 0.75, auc


def test_shared_negatives_loop_rejects_bad_settings():
    tf = _factory()
    model = DistMult(triples_factory=tf, embedding_dim=4, random_seed=0)
    with pytest.raises(ValueError, match="positive"):
        SharedNegativesTrainingLoop(model=model, triples_factory=tf, num_shared_negatives=0)
    with pytest.raises(ValueError, match="head_fraction"):
        SharedNegativesTrainingLoop(model=model, triples_factory=tf, head_fraction=1.5)
