"""The ``multvae`` recommender: Mult-VAE (Liang et al., WWW 2018), served with numpy.

``fit`` trains the variational autoencoder in torch (``recommenders/models/_vae_training.py``); the
weights are kept as numpy arrays and saved in the shared ``arrays.npz`` (no pickle), so a
loaded model scores without importing torch. A user's score vector is the decoder's logits
for the mean of the encoded, L2-normalised interaction row; any history folds in the same
way (the encoder takes it as it is), which is how the API serves feedback newer than the fit.

Like EASE, the model covers the items with at least ``min_users`` users, at most
``max_items`` of them with the largest audience; other items score −∞ (the fallback chain
fills with them). The logits are not a sum over paths, so reasons are ``evidence``: the
user's items with the largest gradient × input of the item's logit (how much each own item,
as the network reads it, pushes the item up), as ``(u)-[:INTERACTED]->(j)`` paths.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitContext, FitCost, Reason, StartsWarm, Tunable
from kgrec.recommenders.config import AtLeastOne, ModelConfig, NonNegative, Positive, Range
from kgrec.recommenders.models.ease import kept_items
from kgrec.recommenders.models.scored import HistoryScored, ScoredRecommender
from kgrec.recommenders.models.sparse_rows import interaction_weights, weight_vector
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim

if TYPE_CHECKING:
    import optuna

EVIDENCE = "evidence"
#: The network's arrays; ``lv_*`` (the log-variance half of the latent layer) is not used to
#: serve, but a warm start (``kgrec train --warm-start``) continues training from it.
WEIGHTS = ("enc_w", "enc_b", "mu_w", "mu_b", "lv_w", "lv_b", "dec_w", "dec_b", "out_w", "out_b")


@dataclass(frozen=True)
class VAENetworkConfig(ModelConfig):
    """The Mult-VAE network and training options that ``multvae`` and ``multitask`` share
    (``MultVAEConfig`` says what each means and how the defaults were chosen)."""

    hidden_dim: Annotated[int, AtLeastOne] = 600
    latent_dim: Annotated[int, AtLeastOne] = 64
    dropout: Annotated[float, Range(0, 1, open_high=True)] = 0.5
    epochs: Annotated[int, NonNegative] = 75
    batch_size: Annotated[int, AtLeastOne] = 500
    lr: Annotated[float, Positive] = 1e-3
    anneal_cap: Annotated[float, NonNegative] = 0.2
    anneal_epochs: Annotated[int, NonNegative] = 20
    min_users: Annotated[int, AtLeastOne] = 2
    neighbours_explained: Annotated[int, NonNegative] = 3
    threads: Annotated[int, NonNegative] = 0


@dataclass(frozen=True)
class MultVAEConfig(VAENetworkConfig):
    """Network (``hidden_dim`` → ``latent_dim``) and training options; ``anneal_cap`` is the
    final β of the KL term, reached after ``anneal_epochs``. ``epochs`` = 75, batch 500 and
    latent 64 were chosen on validation cuts of Last.fm 2K and ml-latest-small (epochs 50 / 75 /
    100: Last.fm 0.174 / 0.173 / 0.164, ml 0.170 / 0.185 / 0.196; latent 64 beat the paper's 200
    on both); ``kgrec train`` tunes them on the user's data (``search_space``). With
    ``validation_fraction`` > 0, ``fit`` chooses the length itself: it holds out that share of
    the items of up to ``validation_users`` users, trains on the rest for at most ``epochs``,
    checks validation NDCG@10 every ``eval_every`` epochs, stops after ``patience`` checks
    without a gain, and trains on everything for the best number of epochs (on the two shared
    datasets this was not better than the fixed default: the holdout's curve flattens early).
    ``threads``: torch CPU threads while training (0: torch's default)."""

    weight_decay: Annotated[float, NonNegative] = 0.0
    validation_fraction: Annotated[float, Range(0, 1, open_high=True)] = 0.0
    validation_users: Annotated[int, AtLeastOne] = 1000
    eval_every: Annotated[int, AtLeastOne] = 5
    patience: Annotated[int, AtLeastOne] = 3
    max_items: Annotated[int, AtLeastOne] = 20000
    interaction_weighting: Literal["binary", "log", "raw"] = "binary"
    device: str = "auto"


@register("multvae", fit_cost=FitCost(nnz=80.0, fixed=2.0))
class MultVAE(ScoredRecommender, HistoryScored, StartsWarm, Tunable):
    additive: ClassVar[bool] = False
    positive_only: ClassVar[bool] = False
    Config = MultVAEConfig
    config: MultVAEConfig

    _keep: np.ndarray
    _w: dict[str, np.ndarray]

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        """The knobs that moved validation NDCG: latent size, input dropout, the KL cap, the
        step size and the length of training (bounded to keep a trial within the budget)."""
        return {
            "latent_dim": trial.suggest_categorical("latent_dim", [32, 64, 128, 200]),
            "dropout": trial.suggest_float("dropout", 0.2, 0.7),
            "anneal_cap": trial.suggest_float("anneal_cap", 0.0, 0.5),
            "lr": trial.suggest_float("lr", 3e-4, 3e-3, log=True),
            "epochs": trial.suggest_int("epochs", 25, 150, step=25),
        }

    def fit(self, snapshot: GraphSnapshot, ctx: FitContext | None = None) -> MultVAE:
        """Train on ``snapshot``; with ``ctx.warm`` (``kgrec train --warm-start``) start from the
        old bundle's network when the guards allow (``recommenders.models.warm_fit``)."""
        self._start(snapshot)
        if ctx is None or ctx.warm is None:
            self.warm_record = None
            self._fit(snapshot)
            return self
        from kgrec.recommenders.models.warm_adapters import MultVAEWarm
        from kgrec.recommenders.models.warm_fit import warm_fit

        if not warm_fit(self, snapshot, ctx, MultVAEWarm(self, ctx.warm)):
            self._fit(snapshot)
        return self

    def warm_shape(self) -> dict[str, Any]:
        return {"hidden_dim": self.config.hidden_dim, "latent_dim": self.config.latent_dim}

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        cfg = self.config
        if not 0 <= cfg.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if not 0 <= cfg.validation_fraction < 1:
            raise ValueError("validation_fraction must be in [0, 1)")
        if min(cfg.hidden_dim, cfg.latent_dim, cfg.batch_size, cfg.max_items) < 1 or cfg.epochs < 0:
            raise ValueError("hidden_dim, latent_dim, batch_size and max_items must be positive, epochs >= 0")
        self._weights = interaction_weights(snapshot, cfg.interaction_weighting)

    def _fit(self, snapshot: GraphSnapshot) -> None:
        from kgrec.recommenders.models._vae_training import TrainOptions, hold_out, train_multvae

        cfg = self.config
        audience = np.diff(sp.csc_matrix(snapshot.interactions).indptr)
        keep = kept_items(audience, cfg.min_users, cfg.max_items)
        opts = TrainOptions(hidden_dim=cfg.hidden_dim, latent_dim=cfg.latent_dim, dropout=cfg.dropout,
                            epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                            weight_decay=cfg.weight_decay, anneal_cap=cfg.anneal_cap, device=cfg.device,
                            seed=cfg.seed, anneal_epochs=cfg.anneal_epochs, eval_every=cfg.eval_every,
                            patience=cfg.patience, threads=cfg.threads)
        self._w, self.curve = {}, []
        x = self._weights[:, keep]
        if len(keep) and cfg.validation_fraction > 0:
            cut, holdout = hold_out(x, cfg.validation_fraction, cfg.validation_users, cfg.seed)
            if len(holdout.users):
                self.curve = train_multvae(cut, opts, holdout)[1]
                best = self.best_epoch  # None only when no epoch was validated: epochs=0
                opts = replace(opts, epochs=opts.epochs if best is None else best)
        if len(keep):
            self._w = train_multvae(x, opts)[0].weights()
        self._set_keep(keep)

    @property
    def best_epoch(self) -> int | None:
        """The number of epochs chosen on the validation holdout (None when not chosen)."""
        return max(self.curve, key=lambda c: c[1])[0] if self.curve else None

    def _set_keep(self, keep: np.ndarray) -> None:
        self._keep = np.asarray(keep, dtype=np.int64)
        self._position = np.full(len(self._snap().items), -1, dtype=np.int64)
        self._position[self._keep] = np.arange(len(self._keep))

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {
        "keep": (None,), "curve": (None, None), **{k: (None, None) if k.endswith("_w") else (None,) for k in WEIGHTS}}

    def _state(self) -> dict[str, np.ndarray]:
        empty = {k: np.zeros((0, 0) if k.endswith("_w") else 0, dtype=np.float32) for k in WEIGHTS}
        curve = np.asarray(self.curve, dtype=np.float64).reshape(-1, 2)
        return {"keep": self._keep, "curve": curve, **(self._w or empty)}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._w = {k: arrays[k] for k in WEIGHTS} if arrays["out_w"].size else {}
        self.curve = [(int(e), float(v)) for e, v in arrays["curve"]]
        self._set_keep(arrays["keep"])

    # -- scoring ------------------------------------------------------------------------------
    def _input(self, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The modelled items of a history with positive values, and those values normalised
        to unit length (the encoder's input); None when nothing is left."""
        pos = self._position[items]
        mine = (pos >= 0) & (values > 0)
        if not mine.any() or not self._w:
            return None
        v = values[mine].astype(np.float64)
        return pos[mine], v / np.sqrt(np.square(v).sum())

    def _hidden(self, pos: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hidden activations of the mean path for a sparse normalised input."""
        w = self._w
        h1 = np.tanh(v @ w["enc_w"][pos].astype(np.float64) + w["enc_b"])
        mu = h1 @ w["mu_w"] + w["mu_b"]
        return h1, np.tanh(mu @ w["dec_w"] + w["dec_b"])

    def _forward(self, pos: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hidden activations and logits of the mean path for a sparse normalised input."""
        h1, h2 = self._hidden(pos, v)
        # In the weights' float32: a float64 h2 would copy the whole output matrix up each call.
        return h1, h2, h2.astype(np.float32) @ self._w["out_w"] + self._w["out_b"]

    def _score_history(self, items: np.ndarray, values: np.ndarray) -> np.ndarray | None:
        found = self._input(items, values)
        if found is None:
            return None
        out = np.full(len(self._position), -np.inf)
        out[self._keep] = self._forward(*found)[2]
        return out

    def _scores(self, u: int) -> np.ndarray | None:
        w = self._weights
        a, b = w.indptr[u], w.indptr[u + 1]
        return self._score_history(w.indices[a:b], w.data[a:b])

    def _history_scores(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """The same encoding for a history newer than the fit. A negative weight (a dislike)
        is not a play: it is left out of the encoder's input (the API excludes the item)."""
        values = np.where(weights > 0, weight_vector(np.maximum(weights, 0), self.config.interaction_weighting), 0.0)
        return self._score_history(items, values)

    # -- explanations -------------------------------------------------------------------------
    def gradient_x_input(self, u: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's modelled items and, for each, input × ∂logit_i/∂input at the user's row
        (back-propagated through the mean path in numpy)."""
        w = self._weights
        a, b = w.indptr[u], w.indptr[u + 1]
        items, values = w.indices[a:b], w.data[a:b]
        found = self._input(items, values)
        if found is None or self._position[i] < 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        pos, v = found
        h1, h2 = self._hidden(pos, v)  # one item's logit only: no product with every output column
        wts = self._w
        g = wts["out_w"][:, self._position[i]] * (1.0 - h2**2)  # d logit / d decoder pre-activation
        g = (wts["mu_w"] @ (wts["dec_w"] @ g)) * (1.0 - h1**2)  # d logit / d encoder pre-activation
        grad = wts["enc_w"][pos].astype(np.float64) @ g
        return self._keep[pos], v * grad

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        items, shares = self.gradient_x_input(u, i)
        return gradient_reasons(self, u, i, items, shares, "the Mult-VAE", self.config.neighbours_explained)


def gradient_reasons(model: ScoredRecommender, u: int, i: int, items: np.ndarray, shares: np.ndarray,
                     network: str, limit: int) -> list[Reason]:
    """The user's items with the largest gradient × input shares in ``i``'s score, strongest
    first (ties by item), each a path through the item: evidence, not a decomposition."""
    snap = model._snap()
    order = np.lexsort((items, -shares))[:limit]
    reasons = []
    for k in order.tolist():
        j, share = int(items[k]), float(shares[k])
        text = (f"You interacted with {snap.title(j)}, which moves {snap.title(i)} "
                f"{'up' if share > 0 else 'down'} in {network} (gradient × input {share:+.3f}); "
                "supporting evidence, not the cause of the score")
        reasons.append(model._paths.own_item(u, j, share, text, kind=EVIDENCE))
    return reasons
