"""Training the multi-task Mult-VAE in torch; ``recommenders/models/multitask.py`` serves it.

Private (``_``): the registry's discovery skips it, so loading models never imports torch.

One network for several behaviours of the same users (plays and tags, check-ins and tips): the
input is the user's behaviour rows side by side, each block L2-normalised on its own (a heavy
behaviour does not drown a light one), read by one ``EmbeddingBag`` over the concatenated
columns (sparse, as Mult-VAE) with input dropout; shared tanh layer → Gaussian latent (μ, log σ²)
→ shared tanh layer → **one linear head and softmax per behaviour**. Loss: Σₜ wₜ · multinomial
NLLₜ + β·KL, β raised to ``anneal_cap`` over ``anneal_epochs`` (Mult-VAE's annealing). With one
behaviour it is exactly ``multvae``'s network. Adam, shuffled mini-batches, seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class MultiTaskOptions:
    hidden_dim: int = 600
    latent_dim: int = 64
    dropout: float = 0.5
    epochs: int = 75
    batch_size: int = 500
    lr: float = 1e-3
    anneal_cap: float = 0.2
    anneal_epochs: int = 20
    seed: int = 42
    threads: int = 0


def input_blocks(xs: Sequence[sp.csr_matrix]) -> sp.csr_matrix:
    """users × Σ columns: each behaviour's rows L2-normalised on their own, side by side."""
    blocks = []
    for x in xs:
        x = sp.csr_matrix(x, dtype=np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        blocks.append(sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0)) @ x)
    out = sp.csr_matrix(sp.hstack(blocks, format="csr", dtype=np.float32))
    out.sort_indices()
    return out


class MultiTaskNet(nn.Module):
    def __init__(self, n_in: int, heads: Sequence[int], opts: MultiTaskOptions) -> None:
        super().__init__()
        self.latent_dim, self.dropout = opts.latent_dim, opts.dropout
        self.encoder = nn.EmbeddingBag(n_in, opts.hidden_dim, mode="sum")
        self.encoder_bias = nn.Parameter(torch.empty(opts.hidden_dim))
        self.to_latent = nn.Linear(opts.hidden_dim, 2 * opts.latent_dim)
        self.decoder = nn.Linear(opts.latent_dim, opts.hidden_dim)
        self.heads = nn.ModuleList(nn.Linear(opts.hidden_dim, n) for n in heads)
        for w in (self.encoder.weight, self.to_latent.weight, self.decoder.weight, *(h.weight for h in self.linear())):
            nn.init.xavier_uniform_(w)
        for b in (self.encoder_bias, self.to_latent.bias, self.decoder.bias, *(h.bias for h in self.linear())):
            nn.init.normal_(b, std=0.001)

    def linear(self) -> list[nn.Linear]:
        """The heads, one per behaviour."""
        return [cast(nn.Linear, h) for h in self.heads]

    def forward(self, x: sp.csr_matrix) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Per-head logits, μ and log σ² of normalised input rows (training: dropout, sampling)."""
        values = F.dropout(torch.from_numpy(x.data.astype(np.float32)), p=self.dropout, training=self.training)
        hidden = torch.tanh(self.encoder(torch.from_numpy(x.indices.astype(np.int64)),
                                         torch.from_numpy(x.indptr[:-1].astype(np.int64)),
                                         per_sample_weights=values) + self.encoder_bias)
        stats = self.to_latent(hidden)
        mu, logvar = stats[:, : self.latent_dim], stats[:, self.latent_dim :]
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        h2 = torch.tanh(self.decoder(z))
        return [head(h2) for head in self.heads], mu, logvar

    def arrays(self) -> dict[str, np.ndarray]:
        """Serving arrays, float32 (in, out) layout; head t as ``out_w:t`` / ``out_b:t``."""
        def arr(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

        k = self.latent_dim
        out = {"enc_w": arr(self.encoder.weight), "enc_b": arr(self.encoder_bias),
               "mu_w": arr(self.to_latent.weight[:k].T), "mu_b": arr(self.to_latent.bias[:k]),
               "dec_w": arr(self.decoder.weight.T), "dec_b": arr(self.decoder.bias)}
        for t, head in enumerate(self.linear()):
            out[f"out_w:{t}"], out[f"out_b:{t}"] = arr(head.weight.T), arr(head.bias)
        return out


def train_multitask(xs: Sequence[sp.csr_matrix], weights: Sequence[float], opts: MultiTaskOptions,
                    on_epoch: Callable[[int, dict[str, np.ndarray]], None] | None = None,
                    every: int = 5) -> dict[str, np.ndarray]:
    """Fit one head per behaviour matrix of ``xs`` (users × columns each, same user rows; every
    behaviour is also an input block), head t's loss weighted by ``weights[t]`` (0: input only).
    ``on_epoch(epoch, arrays)`` every ``every`` epochs (and at the last). Returns the arrays."""
    previous = torch.get_num_threads()
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    try:
        return _train(xs, weights, opts, on_epoch, every)
    finally:
        torch.set_num_threads(previous)


def _train(xs: Sequence[sp.csr_matrix], weights: Sequence[float], opts: MultiTaskOptions,
           on_epoch: Callable[[int, dict[str, np.ndarray]], None] | None, every: int) -> dict[str, np.ndarray]:
    torch.manual_seed(opts.seed)
    x_in = input_blocks(xs)
    ys = [sp.csr_matrix(x, dtype=np.float32) for x in xs]
    net = MultiTaskNet(x_in.shape[1], [y.shape[1] for y in ys], opts)
    optimiser = torch.optim.Adam(net.parameters(), lr=opts.lr)
    rows = np.flatnonzero(np.diff(x_in.indptr) > 0)
    order = torch.Generator().manual_seed(opts.seed)
    batches = max(1, -(-len(rows) // opts.batch_size))
    anneal_steps = max(1, opts.anneal_epochs * batches)
    step = 0
    net.train()
    for epoch in range(1, opts.epochs + 1):
        perm = rows[torch.randperm(len(rows), generator=order).numpy()]
        for b in range(batches):
            sel = perm[b * opts.batch_size : (b + 1) * opts.batch_size]
            logits, mu, logvar = net(x_in[sel])
            nll = torch.zeros(())
            for w, y, lg in zip(weights, ys, logits, strict=True):
                yb = y[sel]
                if w == 0 or yb.nnz == 0:
                    continue
                r = torch.from_numpy(np.repeat(np.arange(len(sel)), np.diff(yb.indptr)))
                c = torch.from_numpy(yb.indices.astype(np.int64))
                nll = nll - w * (F.log_softmax(lg, dim=1)[r, c] * torch.from_numpy(yb.data)).sum() / len(sel)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean()
            loss = nll + opts.anneal_cap * min(1.0, step / anneal_steps) * kl
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
        if on_epoch is not None and (epoch % every == 0 or epoch == opts.epochs):
            net.eval()
            on_epoch(epoch, net.arrays())
            net.train()
    net.eval()
    return net.arrays()
