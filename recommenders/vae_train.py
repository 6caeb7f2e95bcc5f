"""Training Mult-VAE (Liang et al., WWW 2018) in torch; ``recommenders/multvae.py`` serves it.

The network maps a user's L2-normalised interaction row (with input dropout) through a tanh
layer to the mean and log-variance of a Gaussian latent, and from a sample of it through a
tanh layer to logits over the items. The loss is the multinomial log-likelihood of the row
under the softmax of the logits plus β·KL(q(z|x) ‖ N(0, I)), with β raised linearly from 0
to ``anneal_cap`` over the run (the paper's KL annealing). Adam, shuffled mini-batches.

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

from embeddings.train import resolve_device


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


class MultVAENet(nn.Module):
    """encoder (tanh) → mean and log-variance → decoder (tanh) → item logits."""

    def __init__(self, n_items: int, hidden_dim: int, latent_dim: int, dropout: float) -> None:
        super().__init__()
        self.latent_dim, self.dropout = latent_dim, dropout
        self.encoder = nn.Linear(n_items, hidden_dim)
        self.to_latent = nn.Linear(hidden_dim, 2 * latent_dim)
        self.decoder = nn.Linear(latent_dim, hidden_dim)
        self.to_items = nn.Linear(hidden_dim, n_items)
        for layer in (self.encoder, self.to_latent, self.decoder, self.to_items):
            nn.init.xavier_uniform_(layer.weight)  # Xavier weights, small biases: the paper's code
            nn.init.normal_(layer.bias, std=0.001)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, mean and log-variance; in training mode the input is dropped out and the
        latent sampled, in eval mode the mean is decoded (what serving computes)."""
        h = F.dropout(F.normalize(x, dim=1), p=self.dropout, training=self.training)
        stats = self.to_latent(torch.tanh(self.encoder(h)))
        mu, logvar = stats[:, : self.latent_dim], stats[:, self.latent_dim :]
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.to_items(torch.tanh(self.decoder(z))), mu, logvar

    def weights(self) -> dict[str, np.ndarray]:
        """The arrays serving needs, float32 with (in, out) layout."""
        out = {}
        for name, layer, cols in (("enc", self.encoder, None), ("mu", self.to_latent, slice(0, self.latent_dim)),
                                  ("dec", self.decoder, None), ("out", self.to_items, None)):
            w, b = layer.weight.detach().cpu().numpy().T, layer.bias.detach().cpu().numpy()
            if cols is not None:
                w, b = w[:, cols], b[cols]
            out[f"{name}_w"] = np.ascontiguousarray(w, dtype=np.float32)
            out[f"{name}_b"] = np.ascontiguousarray(b, dtype=np.float32)
        return out


def train_multvae(x: sp.csr_matrix, opts: TrainOptions) -> MultVAENet:
    """Fit on the user×item rows of ``x`` (users with no item are skipped); the network is
    returned on the CPU in eval mode (``.weights()`` gives the serving arrays)."""
    torch.manual_seed(opts.seed)
    device = torch.device(resolve_device(opts.device))
    net = MultVAENet(x.shape[1], opts.hidden_dim, opts.latent_dim, opts.dropout).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    x = sp.csr_matrix(x, dtype=np.float32)
    rows = np.flatnonzero(np.diff(x.indptr) > 0)
    order = torch.Generator().manual_seed(opts.seed)
    batches = max(1, -(-len(rows) // opts.batch_size))
    total_steps = max(1, opts.epochs * batches)
    step = 0
    net.train()
    for _ in range(opts.epochs):
        perm = rows[torch.randperm(len(rows), generator=order).numpy()]
        for b in range(batches):
            xb = torch.from_numpy(x[perm[b * opts.batch_size : (b + 1) * opts.batch_size]].toarray()).to(device)
            logits, mu, logvar = net(xb)
            nll = -(F.log_softmax(logits, dim=1) * xb).sum(dim=1).mean()
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean()
            loss = nll + opts.anneal_cap * step / total_steps * kl
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
    return net.cpu().eval()
