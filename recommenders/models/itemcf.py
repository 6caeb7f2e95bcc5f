"""Item-based collaborative filtering: items similar to the ones you interacted with.

Item vectors (columns of the user×item matrix, optionally BM25-weighted with
``implicit.nearest_neighbours.bm25_weight``) are compared by cosine with shrinkage,
``sim = x_j·x_i / (|x_j| |x_i| + shrink)``, which damps similarities resting on few
co-interactions; each item keeps its ``neighbours`` most similar items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import bm25_weight

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, Tunable
from kgrec.recommenders.config import AtLeastOne, Fraction, NonNegative
from kgrec.recommenders.models.item_to_item import ItemToItem, ItemToItemConfig, blockwise_item_products, drop_diagonal
from kgrec.recommenders.models.sparse_rows import interaction_weights, keep_top_per_row, neighbourhood_space
from kgrec.recommenders.registry import register

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class ItemCFConfig(ItemToItemConfig):
    """``weighting``: ``cosine`` (plain vectors) or ``bm25``; ``interaction_weighting``:
    how play counts enter (``binary``, ``log``, ``raw``). Defaults chosen on a Last.fm 2K
    validation cut (cosine beat BM25; 400 neighbours beat 100)."""

    weighting: Literal["cosine", "bm25"] = "cosine"
    shrink: Annotated[float, NonNegative] = 10.0
    neighbours: Annotated[int, AtLeastOne] = 400
    bm25_k1: Annotated[float, NonNegative] = 1.2
    bm25_b: Annotated[float, Fraction] = 0.75


def similarity_vectors(snapshot: GraphSnapshot, config: ItemCFConfig) -> sp.csr_matrix:
    """User×item matrix whose columns are the item vectors to compare."""
    x = interaction_weights(snapshot, config.interaction_weighting)
    if config.weighting == "bm25":
        x = sp.csr_matrix(bm25_weight(x.T.tocoo(), K1=config.bm25_k1, B=config.bm25_b).T, dtype=np.float64)
    elif config.weighting != "cosine":
        raise ValueError(f"unknown weighting {config.weighting!r}; expected cosine or bm25")
    return x


@register("itemcf", fit_cost=FitCost(pairs=0.42, nnz=0.1, fixed=0.05), default_rank=3, hybrid_rank=2)
class ItemCF(ItemToItem, Tunable):
    Config = ItemCFConfig
    config: ItemCFConfig

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        return neighbourhood_space(trial, snapshot, (20, 1000))

    def _fit(self, snapshot: GraphSnapshot) -> None:
        cfg = self.config
        x = similarity_vectors(snapshot, cfg)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())

        def transform(rows: np.ndarray, prod: sp.csr_matrix) -> sp.csr_matrix:
            prod = sp.coo_matrix(drop_diagonal(rows, prod))
            prod.data = prod.data / (norms[rows[prod.row]] * norms[prod.col] + cfg.shrink)
            return keep_top_per_row(sp.csr_matrix(prod), cfg.neighbours)

        self._sim = blockwise_item_products(x, transform)

    def _reason_text(self, u: int, j: int, i: int, co_users: int, sim: float) -> str:
        s = self._snap()
        return (f"You interacted with {s.title(j)}; {co_users} people who did also chose {s.title(i)} "
                f"(similarity {sim:.3f})")
