"""What ``warm_fit`` needs from kge, multvae and als: each model's parameters as a *state*
labelled by id, training from a state, and serving one (see ``recommenders.models.warm_fit``).

- kge: the state is a ``KGEArtifact`` (vectors + entity and relation labels); training is
  ``embeddings.warm_train`` (PyKEEN, the model's own loop and step size). Across graphs, tags
  may match by normalised name (``WarmStart.tag_names``).
- multvae: (kept item ids, the serving arrays with the log-variance half); training is the
  Mult-VAE loop from that state with the KL weight at its cap from the first step (the old model
  was annealed already; annealing again from 0 undid the prior for several epochs in the
  prototype and was no better).
- als: (user ids, user factors, item ids, item factors); implicit's ALS draws random factors only
  when none are set, so it continues from the given ones; serving re-solves the users exactly
  from the item factors, as a cold fit does.

torch, pykeen and implicit are imported inside the functions.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from kgrec.embeddings.artifact import KGEArtifact
from kgrec.embeddings.triples import tag_label
from kgrec.embeddings.warm_init import name_aliases
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Recommender, WarmStart
from kgrec.recommenders.models.ease import kept_items
from kgrec.recommenders.models.sparse_rows import interaction_weights
from kgrec.recommenders.models.warm_fit import AfterEpoch
from kgrec.recommenders.models.warm_rows import (
    als_initial_factors,
    co_occurrence,
    vae_initial_state,
    vae_serving,
    vae_state,
)

#: Mult-VAE's serving arrays (``multvae.WEIGHTS`` and the log-variance half).
VAE_ARRAYS = ("enc_w", "enc_b", "mu_w", "mu_b", "lv_w", "lv_b", "dec_w", "dec_b", "out_w", "out_b")


class _Stop(Exception):
    """Ends a training loop from its epoch callback."""


@dataclass
class KGEWarm:
    model: Any  # a KGE (its module imports this one)
    warm: WarmStart

    def cold_epochs(self) -> int:
        return self.model.config.epochs

    def source(self, old: Recommender) -> KGEArtifact:
        artifact: KGEArtifact = old.artifact  # type: ignore[attr-defined]
        return artifact

    def _aliases(self, snapshot: GraphSnapshot) -> dict[str, str] | None:
        if not self.warm.tag_names:
            return None
        old = self.warm.snapshot
        return name_aliases({tag_label(t): old.tag_names[k] for k, t in enumerate(old.tags.ids)},
                            {tag_label(t): snapshot.tag_names[k] for k, t in enumerate(snapshot.tags.ids)})

    def train(self, snapshot: GraphSnapshot, source: KGEArtifact, epochs: int,
              after_epoch: AfterEpoch | None) -> tuple[KGEArtifact, dict[str, Any]]:
        from kgrec.embeddings.warm_train import warm_train

        artifact, info = warm_train(snapshot, self.model.config.train_config(), source, epochs, after_epoch,
                                    self._aliases(snapshot))
        return artifact, {"entities": info["entities"], "relations": info["relations"]}

    def attach(self, model: Recommender, snapshot: GraphSnapshot, state: KGEArtifact) -> None:
        model.attach(state, snapshot)  # type: ignore[attr-defined]


@dataclass
class MultVAEWarm:
    model: Any  # a MultVAE
    warm: WarmStart

    def cold_epochs(self) -> int:
        return self.model.config.epochs

    def source(self, old: Recommender) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
        ids = old.snapshot.items.ids  # type: ignore[attr-defined]
        return tuple(ids[k] for k in old._keep.tolist()), dict(old._w)  # type: ignore[attr-defined]

    def train(self, snapshot: GraphSnapshot, source: tuple[tuple[str, ...], dict[str, np.ndarray]], epochs: int,
              after_epoch: AfterEpoch | None) -> tuple[Any, dict[str, Any]]:
        import torch
        from torch.nn import functional as F

        from kgrec.recommenders.models._vae_training import Batch, MultVAENet

        cfg = self.model.config
        weights = interaction_weights(snapshot, cfg.interaction_weighting)
        keep = kept_items(np.diff(sp.csc_matrix(snapshot.interactions).indptr), cfg.min_users, cfg.max_items)
        ids = tuple(snapshot.items.ids[k] for k in keep.tolist())
        x = sp.csr_matrix(weights[:, keep], dtype=np.float32)
        x.sort_indices()
        previous = torch.get_num_threads()
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        try:
            torch.manual_seed(cfg.seed)
            net = MultVAENet(len(keep), cfg.hidden_dim, cfg.latent_dim, cfg.dropout)
            fresh = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
            src_ids, src_w = source
            init, report = vae_initial_state(vae_state(src_w, fresh), src_ids, ids, fresh,
                                             co_occurrence(x, snapshot.item_tags[keep]))
            net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in init.items()})

            def state() -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
                return ids, vae_serving({k: v.detach().numpy().copy() for k, v in net.state_dict().items()})

            if (after_epoch is not None and after_epoch(0, state())) or epochs <= 0 or not len(keep):
                return state(), {"items": report.as_dict()}
            optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            rows = np.flatnonzero(np.diff(x.indptr) > 0)
            order = torch.Generator().manual_seed(cfg.seed)
            net.train()
            for epoch in range(1, epochs + 1):
                perm = rows[torch.randperm(len(rows), generator=order).numpy()]
                for b in range(0, len(perm), cfg.batch_size):
                    batch = Batch.of(x[perm[b : b + cfg.batch_size]])
                    logits, mu, logvar = net(batch)
                    nll = -(F.log_softmax(logits, dim=1)[batch.rows, batch.items] * batch.values).sum() / batch.size
                    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean()
                    optimiser.zero_grad()
                    (nll + cfg.anneal_cap * kl).backward()
                    optimiser.step()
                net.eval()
                stop = after_epoch is not None and after_epoch(epoch, state())
                net.train()
                if stop:
                    break
            net.eval()
            return state(), {"items": report.as_dict()}
        finally:
            torch.set_num_threads(previous)

    def attach(self, model: Recommender, snapshot: GraphSnapshot, state: tuple[tuple[str, ...], dict]) -> None:
        ids, w = state
        model._w = {k: w[k] for k in VAE_ARRAYS if k in w}  # type: ignore[attr-defined]
        model.curve = []  # type: ignore[attr-defined]
        model._set_keep(np.array([snapshot.items.index[i] for i in ids], dtype=np.int64))  # type: ignore[attr-defined]


@dataclass
class ALSWarm:
    model: Any  # an ALS
    warm: WarmStart

    def cold_epochs(self) -> int:
        return self.model.config.iterations

    def source(self, old: Recommender) -> tuple[Any, np.ndarray, Any, np.ndarray]:
        snap = old.snapshot  # type: ignore[attr-defined]
        return snap.users.ids, old._users, snap.items.ids, old._items  # type: ignore[attr-defined]

    def train(self, snapshot: GraphSnapshot, source: tuple[Any, np.ndarray, Any, np.ndarray], epochs: int,
              after_epoch: AfterEpoch | None) -> tuple[Any, dict[str, Any]]:
        cfg = self.model.config
        probe = type(self.model)(cfg)
        probe._start(snapshot)  # the confidences the model fits on
        conf = probe._conf
        with threadpool_limits(1, "blas"):
            users, items, report = als_initial_factors(source[0], source[1], source[2], source[3], snapshot.users.ids,
                                                       snapshot.items.ids, conf, cfg.regularization, cfg.alpha)
        state = (snapshot.users.ids, users, snapshot.items.ids, items)
        if (after_epoch is not None and after_epoch(0, state)) or epochs <= 0:
            return state, report
        model = self.model._model(items.shape[1])
        model.iterations = epochs
        model.user_factors, model.item_factors = users, items

        def callback(iteration: int, elapsed: float, loss: object) -> None:
            now = (snapshot.users.ids, np.array(model.user_factors), snapshot.items.ids, np.array(model.item_factors))
            state_box[0] = now
            if after_epoch is not None and after_epoch(iteration + 1, now):
                raise _Stop

        state_box = [state]
        with threadpool_limits(1, "blas"), contextlib.suppress(_Stop):
            model.fit(conf.copy(), show_progress=False, callback=callback)
        return state_box[0], report

    def attach(self, model: Recommender, snapshot: GraphSnapshot, state: tuple[Any, np.ndarray, Any, np.ndarray]
               ) -> None:
        model._items = np.asarray(state[3], dtype=np.float64)  # type: ignore[attr-defined]
        with threadpool_limits(1, "blas"):
            model._users = model._solve_users()  # type: ignore[attr-defined]
        model._implicit = None  # type: ignore[attr-defined]
