"""Association rules over co-interactions: "people who chose j also chose i".

For each pair of items, support = n(j, i) / N, confidence(j → i) = n(j, i) / n(j) and
lift = confidence / (n(i) / N), counted over users. Rules below ``min_count``
co-interactions or ``min_confidence`` are dropped and each item keeps its ``neighbours``
strongest rules. ``score(u, i) = sum over your items j of metric(j → i)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, Tunable
from kgrec.recommenders.config import AtLeastOne, Fraction
from kgrec.recommenders.models.item_to_item import ItemToItem, ItemToItemConfig, blockwise_item_products, drop_diagonal
from kgrec.recommenders.models.sparse_rows import interaction_weights, keep_top_per_row, row_values
from kgrec.recommenders.registry import register

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class AssociationConfig(ItemToItemConfig):
    """``metric``: ``confidence`` or ``lift``."""

    metric: Literal["confidence", "lift"] = "confidence"
    min_count: Annotated[int, AtLeastOne] = 2
    min_confidence: Annotated[float, Fraction] = 0.0
    neighbours: Annotated[int, AtLeastOne] = 100


@register("association", fit_cost=FitCost(pairs=0.36, nnz=0.05, fixed=0.05), default_rank=7, hybrid_rank=8)
class Association(ItemToItem, Tunable):
    Config = AssociationConfig
    config: AssociationConfig

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        return {
            "metric": trial.suggest_categorical("metric", ["confidence", "lift"]),
            "min_count": trial.suggest_int("min_count", 1, 5),
            "neighbours": trial.suggest_int("neighbours", 20, 400, log=True),
        }

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        super()._prepare(snapshot)
        if self.config.metric not in ("confidence", "lift"):
            raise ValueError(f"unknown metric {self.config.metric!r}; expected confidence or lift")
        self._n_users = max(1, len(snapshot.users))
        self._counts = np.diff(self._item_users.indptr).astype(np.float64)

    def _fit(self, snapshot: GraphSnapshot) -> None:
        cfg = self.config
        binary = interaction_weights(snapshot, "binary")
        counts, n = self._counts, self._n_users

        def transform(rows: np.ndarray, prod: sp.csr_matrix) -> sp.csr_matrix:
            m = sp.coo_matrix(drop_diagonal(rows, prod))
            conf = m.data / counts[rows[m.row]]
            keep = (m.data >= cfg.min_count) & (conf >= cfg.min_confidence)
            value = conf if cfg.metric == "confidence" else conf * n / counts[m.col]
            out = sp.csr_matrix((value[keep], (m.row[keep], m.col[keep])), shape=m.shape)
            return keep_top_per_row(out, cfg.neighbours)

        self._sim = blockwise_item_products(binary, transform)

    def _reason_text(self, u: int, j: int, i: int, co_users: int, sim: float) -> str:
        s, n = self._snap(), self._n_users
        both = co_users + (1 if row_values(s.interactions, np.array([u]), i)[0] else 0)
        conf = both / self._counts[j]
        lift = conf * n / self._counts[i]
        return (f"{both} of the {int(self._counts[j])} people who chose {s.title(j)} also chose {s.title(i)} "
                f"(support {both / n:.3f}, confidence {conf:.2f}, lift {lift:.1f})")
