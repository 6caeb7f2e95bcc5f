"""The ``multitask`` recommender: one Mult-VAE network for several behaviours, one head each.

A user's behaviours — ``interactions`` (INTERACTED: plays, ratings, check-ins), ``tagged``
(the items they TAGGED: tag assignments, or tips loaded as taggings) and ``tags`` (the tags they
use) — are read side by side by one shared encoder and latent, and decoded by one softmax head
per behaviour (``recommenders/models/_multitask_training.py``); the ``interactions`` head is
what it serves, the others are there so that each behaviour's data helps the others, and answer
``task_scores``. With only interactions it is ``multvae``'s network. Behaviours the graph lacks
are left out; ``aux_weight`` weighs the other heads' losses against the served one.

Measured against the same network trained on each behaviour alone (``benchmarks/multitask.py``,
``benchmarks/RESULTS.md``): the sparse behaviour gains, the served one does not beat its
single-task network beyond noise, so it is neither a default model nor a default hybrid
component; name it (``--models multitask`` or in ``hybrid.components``) and the hybrid's
validation decides whether it adds anything. Scores are logits, so reasons are ``evidence``: the
user's items with the largest gradient × input of the item's logit, as in ``multvae``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, Reason
from kgrec.recommenders.config import AtLeastOne, NonNegative
from kgrec.recommenders.models.ease import kept_items
from kgrec.recommenders.models.multvae import VAENetworkConfig, gradient_reasons
from kgrec.recommenders.models.scored import ScoredRecommender
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim

Task = Literal["interactions", "tagged", "tags"]
TASKS: tuple[Task, ...] = ("interactions", "tagged", "tags")
SHARED = ("enc_w", "enc_b", "mu_w", "mu_b", "dec_w", "dec_b")


def behaviours(snapshot: GraphSnapshot) -> dict[str, sp.csr_matrix]:
    """Each behaviour as a binary users × columns matrix (items, items, tags)."""
    def binary(m: sp.spmatrix) -> sp.csr_matrix:
        out = sp.csr_matrix(m, dtype=np.float32, copy=True)
        out.sum_duplicates()
        out.data[:] = 1.0
        out.eliminate_zeros()
        return out

    tg = snapshot.taggings
    tagged = sp.csr_matrix((np.ones(len(tg), dtype=np.float32), (tg["user"], tg["item"])),
                           shape=(len(snapshot.users), len(snapshot.items)))
    return {"interactions": binary(snapshot.interactions), "tagged": binary(tagged), "tags": binary(snapshot.user_tags)}


@dataclass(frozen=True)
class MultiTaskConfig(VAENetworkConfig):
    """``tasks``: the behaviours it learns (``interactions`` always, first); the network and
    training options are ``multvae``'s; ``aux_weight``: weight of every other head's loss;
    ``min_users`` / ``max_columns``: which columns of each behaviour it models."""

    tasks: tuple[Task, ...] = ("interactions", "tagged", "tags")
    aux_weight: Annotated[float, NonNegative] = 1.0
    max_columns: Annotated[int, AtLeastOne] = 20000


@register("multitask", fit_cost=FitCost(nnz=120.0, fixed=2.0))
class MultiTask(ScoredRecommender):
    additive: ClassVar[bool] = False
    positive_only: ClassVar[bool] = False
    Config = MultiTaskConfig
    config: MultiTaskConfig

    _w: dict[str, np.ndarray]
    _used: tuple[str, ...]
    _cols: dict[str, np.ndarray]

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {
        "used": (None,), **{k: (None, None) if k.endswith("_w") else (None,) for k in SHARED},
        **{f"{p}_{t}": (None, None) if p == "out_w" else (None,) for t in TASKS for p in ("cols", "out_w", "out_b")}}

    @classmethod
    def applies_to(cls, snapshot: GraphSnapshot) -> bool:
        """A second behaviour to learn with: taggings."""
        return snapshot.interactions.nnz > 0 and len(snapshot.taggings) > 0

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        if not self.config.tasks or self.config.tasks[0] != "interactions":
            raise ValueError("multitask: tasks must start with 'interactions', the behaviour it serves")
        self._x = behaviours(snapshot)

    def _fit(self, snapshot: GraphSnapshot) -> None:
        from kgrec.recommenders.models._multitask_training import MultiTaskOptions, train_multitask

        c = self.config
        used = tuple(dict.fromkeys(t for t in c.tasks if self._x[t].nnz > 0))
        cols: dict[str, np.ndarray] = {
            t: kept_items(np.diff(sp.csc_matrix(self._x[t]).indptr), c.min_users, c.max_columns) for t in used}
        used = tuple(t for t in used if len(cols[t]) or t == "interactions")
        opts = MultiTaskOptions(hidden_dim=c.hidden_dim, latent_dim=c.latent_dim, dropout=c.dropout, epochs=c.epochs,
                                batch_size=c.batch_size, lr=c.lr, anneal_cap=c.anneal_cap,
                                anneal_epochs=c.anneal_epochs, seed=c.seed, threads=c.threads)
        w: dict[str, np.ndarray] = {}
        if len(cols["interactions"]):
            xs = [self._x[t][:, cols[t]] for t in used]
            raw = train_multitask(xs, [1.0 if t == "interactions" else c.aux_weight for t in used], opts)
            w = {k: raw[k] for k in SHARED}
            for n, t in enumerate(used):
                w[f"out_w_{t}"], w[f"out_b_{t}"] = raw[f"out_w:{n}"], raw[f"out_b:{n}"]
        self._set(used, cols, w)

    def _set(self, used: tuple[str, ...], cols: dict[str, np.ndarray], w: dict[str, np.ndarray]) -> None:
        self._used, self._w = used, w
        self._cols = {t: np.asarray(cols.get(t, np.zeros(0)), dtype=np.int64) for t in TASKS}
        self._position: dict[str, np.ndarray] = {}
        offset = 0
        self._offset: dict[str, int] = {}
        for t in used:
            pos = np.full(self._x[t].shape[1], -1, dtype=np.int64)
            pos[self._cols[t]] = np.arange(len(self._cols[t]))
            self._position[t], self._offset[t] = pos, offset
            offset += len(self._cols[t])

    def _state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"used": np.array([TASKS.index(t) for t in self._used], dtype=np.int64)}
        for k in SHARED:
            out[k] = self._w.get(k, np.zeros((0, 0) if k.endswith("_w") else 0, dtype=np.float32))
        for t in TASKS:
            out[f"cols_{t}"] = self._cols[t]
            out[f"out_w_{t}"] = self._w.get(f"out_w_{t}", np.zeros((0, 0), dtype=np.float32))
            out[f"out_b_{t}"] = self._w.get(f"out_b_{t}", np.zeros(0, dtype=np.float32))
        return out

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        used = tuple(TASKS[int(k)] for k in arrays["used"])
        w = {k: arrays[k] for k in SHARED} if arrays["enc_w"].size else {}
        if w:
            w.update({f"{p}_{t}": arrays[f"{p}_{t}"] for t in used for p in ("out_w", "out_b")})
        self._set(used, {t: arrays[f"cols_{t}"] for t in TASKS}, w)

    # -- scoring ------------------------------------------------------------------------------
    def _input(self, u: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows of ``enc_w`` the user's behaviours switch on, and their values (each behaviour's
        block L2-normalised on its own)."""
        rows, values = [], []
        for t in self._used:
            x = self._x[t]
            pos = self._position[t][x.indices[x.indptr[u] : x.indptr[u + 1]]]
            pos = pos[pos >= 0]
            if len(pos):
                rows.append(self._offset[t] + pos)
                values.append(np.full(len(pos), 1.0 / np.sqrt(len(pos))))
        if not rows or not self._w:
            return None
        return np.concatenate(rows), np.concatenate(values)

    def _hidden(self, u: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        found = self._input(u)
        if found is None:
            return None
        rows, v = found
        w = self._w
        h1 = np.tanh(v @ w["enc_w"][rows].astype(np.float64) + w["enc_b"])
        h2 = np.tanh((h1 @ w["mu_w"] + w["mu_b"]) @ w["dec_w"] + w["dec_b"])
        return rows, v, h1, h2

    def task_scores(self, user_id: str, task: str) -> np.ndarray | None:
        """Head ``task``'s logits over that behaviour's columns (items, or tags for ``tags``);
        −inf for columns it does not model; None for an unknown user, one with no behaviour the
        model reads, or a task it did not learn."""
        u = self._snap().users.get(user_id)
        if u is None or task not in self._used:
            return None
        found = self._hidden(u)
        if found is None:
            return None
        out = np.full(self._x[task].shape[1], -np.inf)
        out[self._cols[task]] = found[3].astype(np.float32) @ self._w[f"out_w_{task}"] + self._w[f"out_b_{task}"]
        return out

    def _scores(self, u: int) -> np.ndarray | None:
        if self._snap().interactions.indptr[u] == self._snap().interactions.indptr[u + 1]:
            return None
        return self.task_scores(self._snap().users.ids[u], "interactions")

    # -- explanations -------------------------------------------------------------------------
    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        """The user's items whose input pushes item ``i``'s logit most (gradient × input of the
        mean path, over the interactions block)."""
        found = self._hidden(u)
        col = self._position["interactions"][i]
        if found is None or col < 0:
            return []
        rows, v, h1, h2 = found
        w = self._w
        g = w["out_w_interactions"][:, col] * (1.0 - h2**2)
        g = (w["mu_w"] @ (w["dec_w"] @ g)) * (1.0 - h1**2)
        shares = v * (w["enc_w"][rows].astype(np.float64) @ g)
        mine = rows < len(self._cols["interactions"])  # the interactions block comes first
        items, shares = self._cols["interactions"][rows[mine]], shares[mine]
        return gradient_reasons(self, u, i, items, shares, "the multi-task network", self.config.neighbours_explained)
