"""Training Mult-VAE (Liang et al., WWW 2018) in torch; ``recommenders/models/multvae.py`` serves it.

Private (``_``): the registry's discovery skips it, so loading models never imports torch.

The network maps a user's L2-normalised interaction row (with input dropout) through a tanh
layer to the mean and log-variance of a Gaussian latent, and from a sample of it through a
tanh layer to logits over the items. The loss is the multinomial log-likelihood of the row
under the softmax of the logits plus β·KL(q(z|x) ‖ N(0, I)), with β raised linearly from 0
to ``anneal_cap`` over the first ``anneal_epochs`` (the paper's KL annealing). Adam (fused),
shuffled mini-batches. With a validation holdout, training stops early: the number of
epochs that suits a catalogue and its users differs between datasets (Last.fm 2K's
validation NDCG@10 fell after ~50 epochs at batch 500, ml-latest-small's still rose at 100).

Torch is imported only here, and this module only from ``MultVAE._fit``: the trained weights
leave as numpy arrays, so a serving process never imports torch. On CPU the run is
deterministic for a seed (and a thread count); ``device="auto"`` trains on CUDA when present.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from kgrec.embeddings.pykeen_setup import resolve_device


@dataclass(frozen=True)
class TrainOptions:
    hidden_dim: int
    latent_dim: int
    dropout: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    anneal_cap: float
    device: str
    seed: int
    anneal_epochs: int = 20
    eval_every: int = 5
    patience: int = 2
    threads: int = 0


@dataclass(frozen=True)
class Holdout:
    """Validation for early stopping: held-out items (a boolean users × items matrix) of
    some users, whose other items are their input."""

    users: np.ndarray
    relevant: np.ndarray


def hold_out(x: sp.csr_matrix, fraction: float, max_users: int, seed: int) -> tuple[sp.csr_matrix, Holdout]:
    """``x`` without a seeded random ``fraction`` (≥ 1) of the entries of up to ``max_users``
    users with at least 5, and those users' held-out items."""
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix(x, copy=True)
    counts = np.diff(x.indptr)
    users = np.flatnonzero(counts >= 5)
    if len(users) > max_users:
        users = np.sort(rng.choice(users, size=max_users, replace=False))
    relevant = np.zeros((len(users), x.shape[1]), dtype=bool)
    drop = np.zeros(x.nnz, dtype=bool)
    for r, u in enumerate(users.tolist()):
        a, n = x.indptr[u], counts[u]
        held = a + rng.choice(n, size=min(n - 1, max(1, round(fraction * n))), replace=False)
        drop[held] = True
        relevant[r, x.indices[held]] = True
    x.data[drop] = 0.0
    x.eliminate_zeros()
    return x, Holdout(users, relevant)


class MultVAENet(nn.Module):
    """encoder (tanh) → mean and log-variance → decoder (tanh) → item logits.

    Rows come in sparse (``Batch``): the encoder is an ``EmbeddingBag`` summing the rows of
    its weight for the user's items, so the input side never becomes a dense users×items
    tensor; only the output softmax is dense."""

    def __init__(self, n_items: int, hidden_dim: int, latent_dim: int, dropout: float) -> None:
        super().__init__()
        self.latent_dim, self.dropout = latent_dim, dropout
        self.encoder = nn.EmbeddingBag(n_items, hidden_dim, mode="sum")
        self.encoder_bias = nn.Parameter(torch.empty(hidden_dim))
        self.to_latent = nn.Linear(hidden_dim, 2 * latent_dim)
        self.decoder = nn.Linear(latent_dim, hidden_dim)
        self.to_items = nn.Linear(hidden_dim, n_items)
        # Xavier weights and small normal biases, as in the paper's code
        for weight in (self.encoder.weight, self.to_latent.weight, self.decoder.weight, self.to_items.weight):
            nn.init.xavier_uniform_(weight)
        for bias in (self.encoder_bias, self.to_latent.bias, self.decoder.bias, self.to_items.bias):
            nn.init.normal_(bias, std=0.001)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, mean and log-variance; in training mode the input is dropped out and the
        latent sampled, in eval mode the mean is decoded (what serving computes)."""
        norms = torch.zeros(batch.size, dtype=batch.values.dtype, device=batch.values.device)
        norms = norms.index_add(0, batch.rows, batch.values**2).sqrt()
        h = F.dropout(batch.values / norms[batch.rows], p=self.dropout, training=self.training)
        hidden = torch.tanh(self.encoder(batch.items, batch.offsets, per_sample_weights=h) + self.encoder_bias)
        stats = self.to_latent(hidden)
        mu, logvar = stats[:, : self.latent_dim], stats[:, self.latent_dim :]
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.to_items(torch.tanh(self.decoder(z))), mu, logvar

    def weights(self) -> dict[str, np.ndarray]:
        """The arrays serving needs (and the log-variance half, for warm starts), float32 with
        (in, out) layout."""
        def arr(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

        k = self.latent_dim
        return {"enc_w": arr(self.encoder.weight), "enc_b": arr(self.encoder_bias),
                "mu_w": arr(self.to_latent.weight[:k].T), "mu_b": arr(self.to_latent.bias[:k]),
                "lv_w": arr(self.to_latent.weight[k:].T), "lv_b": arr(self.to_latent.bias[k:]),
                "dec_w": arr(self.decoder.weight.T), "dec_b": arr(self.decoder.bias),
                "out_w": arr(self.to_items.weight.T), "out_b": arr(self.to_items.bias)}


@dataclass(frozen=True)
class Batch:
    """Some users' rows of the interaction matrix, flattened: item and value per entry, the
    batch row each entry belongs to, and where each row starts (``EmbeddingBag`` offsets)."""

    items: torch.Tensor
    values: torch.Tensor
    rows: torch.Tensor
    offsets: torch.Tensor
    size: int

    @classmethod
    def of(cls, x: sp.csr_matrix, device: torch.device | str = "cpu") -> Batch:
        lengths = np.diff(x.indptr)
        def put(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device)

        return cls(put(x.indices.astype(np.int64)), put(x.data.astype(np.float32)),
                   put(np.repeat(np.arange(x.shape[0]), lengths)), put(x.indptr[:-1].astype(np.int64)),
                   x.shape[0])


def validation_ndcg(net: MultVAENet, x: sp.csr_matrix, holdout: Holdout, device: torch.device,
                    k: int = 10, block: int = 500) -> float:
    """Mean NDCG@k of the held-out items, ranking every item but the user's inputs."""
    from kgrec.recommenders.evaluation.ranking_metrics import block_ndcg

    net.eval()
    total = 0.0
    with torch.no_grad():
        for s in range(0, len(holdout.users), block):
            rows = x[holdout.users[s : s + block]]
            logits = net(Batch.of(rows, device))[0].double().cpu().numpy()
            logits[rows.nonzero()] = -np.inf
            total += float(block_ndcg(logits, holdout.relevant[s : s + block], k, positive_only=False).sum())
    net.train()
    return total / max(1, len(holdout.users))


def train_multvae(x: sp.csr_matrix, opts: TrainOptions,
                  holdout: Holdout | None = None) -> tuple[MultVAENet, list[tuple[int, float]]]:
    """Fit on the user×item rows of ``x`` (users with no item are skipped) for ``epochs``,
    or, with a ``holdout`` (whose items ``x`` must not contain), until validation NDCG@10 —
    measured every ``eval_every`` epochs — has not improved ``patience`` times in a row,
    keeping the best weights. Returns the network on the CPU in eval mode (``.weights()``
    gives the serving arrays) and the (epoch, validation NDCG@10) curve. ``threads`` > 0 sets
    torch's CPU threads for the run (one thread is far faster for small networks on a busy
    machine, where torch's worker threads wait on each other)."""
    previous = torch.get_num_threads()
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    try:
        return _train(x, opts, holdout)
    finally:
        torch.set_num_threads(previous)


def _train(x: sp.csr_matrix, opts: TrainOptions, holdout: Holdout | None) -> tuple[MultVAENet, list[tuple[int, float]]]:
    torch.manual_seed(opts.seed)
    device = torch.device(resolve_device(opts.device))
    net = MultVAENet(x.shape[1], opts.hidden_dim, opts.latent_dim, opts.dropout).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay, fused=True)
    x = sp.csr_matrix(x, dtype=np.float32)
    x.sort_indices()
    rows = np.flatnonzero(np.diff(x.indptr) > 0)
    order = torch.Generator().manual_seed(opts.seed)
    batches = max(1, -(-len(rows) // opts.batch_size))
    anneal_steps = max(1, opts.anneal_epochs * batches)
    step = 0
    curve: list[tuple[int, float]] = []
    best: dict[str, torch.Tensor] | None = None
    best_value, stale = 0.0, 0
    net.train()
    for epoch in range(1, opts.epochs + 1):
        perm = rows[torch.randperm(len(rows), generator=order).numpy()]
        for b in range(batches):
            batch = Batch.of(x[perm[b * opts.batch_size : (b + 1) * opts.batch_size]], device)
            logits, mu, logvar = net(batch)
            log_p = F.log_softmax(logits, dim=1)[batch.rows, batch.items]
            nll = -(log_p * batch.values).sum() / batch.size
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean()
            loss = nll + opts.anneal_cap * min(1.0, step / anneal_steps) * kl
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
        if holdout is not None and (epoch % opts.eval_every == 0 or epoch == opts.epochs):
            value = validation_ndcg(net, x, holdout, device)
            curve.append((epoch, value))
            if best is None or value > best_value:
                best, best_value, stale = {k: v.detach().clone() for k, v in net.state_dict().items()}, value, 0
            else:
                stale += 1
                if stale >= opts.patience:
                    break
    if best is not None:
        net.load_state_dict(best)
    return net.cpu().eval(), curve
