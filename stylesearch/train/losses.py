"""The paper's loss terms as small, separately testable functions and modules.

Names follow Park & Matsushita 2024 (METHOD.md): L_VAE (eq. 1), L_Triplet (eq. 4) with
semi-hard negatives (eq. 6), ArcFace (eq. 5), NT-Xent for SimCLR, and a Gaussian-mixture
prior for the GMVAE baseline; plus supervised contrastive (SupCon), our addition.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def reconstruction(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Squared error summed over pixels, averaged over the batch (eq. 1, first term)."""
    return (x_hat - x).pow(2).flatten(1).sum(1).mean()


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)), summed over dimensions, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()


def pairwise_sq_distances(e: torch.Tensor) -> torch.Tensor:
    sq = e.pow(2).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * e @ e.T).clamp_min(0)


def semihard_triplet(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> tuple[torch.Tensor, int]:
    """L_Triplet on squared Euclidean distances with FaceNet semi-hard negatives.

    For every anchor-positive pair (same label), the negative is the closest one that is
    still farther than the positive (d_an > d_ap, eq. 6). Pairs with no such negative are
    left out. Returns the mean loss over the chosen triplets and how many there were.
    """
    d = pairwise_sq_distances(embeddings)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos = same & ~eye  # [a, p]
    # d_an for every (a, p, n): valid when n has another label and d_an > d_ap
    d_ap = d[:, :, None]
    d_an = d[:, None, :]
    valid = pos[:, :, None] & ~same[:, None, :] & (d_an > d_ap)
    chosen = torch.where(valid, d_an, torch.full_like(d_an, math.inf)).min(dim=2).values  # [a, p]
    usable = pos & torch.isfinite(chosen)
    if not usable.any():
        return embeddings.sum() * 0.0, 0
    losses = F.relu(d[usable] - chosen[usable] + margin)
    return losses.mean(), int(usable.sum())


def supervised_contrastive(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SupCon (Khosla et al. 2020, L_out): every same-label image in the batch is a positive,
    all others negatives, on cosine similarity. Uses every pair of a P x K batch, where the
    triplet loss keeps one semi-hard negative per pair."""
    z = F.normalize(embeddings, dim=1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    logits = (z @ z.T / temperature).masked_fill(eye, -math.inf)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    counts = pos.sum(1)
    per_anchor = -log_prob.masked_fill(~pos, 0).sum(1) / counts.clamp_min(1)
    return per_anchor[counts > 0].mean() if (counts > 0).any() else embeddings.sum() * 0.0


class ArcFace(nn.Module):
    """Additive angular margin softmax (eq. 5): logits s * cos(theta_y + m) for the true class."""

    def __init__(self, dim: int, classes: int, margin: float = 1.0, scale: float = 10.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.margin, self.scale = margin, scale

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # fp32 whatever autocast picks: CUDA autocast runs acos/cos in fp32 but linear in bf16
        cos = F.linear(F.normalize(embeddings), F.normalize(self.weight)).float().clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos.gather(1, labels[:, None]))
        target = torch.cos((theta + self.margin).clamp(max=math.pi))
        logits = cos.scatter(1, labels[:, None], target) * self.scale
        return F.cross_entropy(logits, labels)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross entropy over 2N views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = len(z1)
    sim.fill_diagonal_(-math.inf)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


class GaussianMixturePrior(nn.Module):
    """The GMVAE baseline's prior: K learnable Gaussians instead of N(0, I).

    KL is taken against the mixture through the responsibilities q(c|z) (the VaDE form of
    a Gaussian-mixture VAE, a simpler relative of Dilokthanakul et al. 2017).
    """

    def __init__(self, dim: int, components: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(torch.randn(components, dim))
        self.logvars = nn.Parameter(torch.zeros(components, dim))

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        log_p = -0.5 * (((z[:, None] - self.means) ** 2) / self.logvars.exp() + self.logvars + math.log(2 * math.pi)).sum(2)
        return F.softmax(log_p + F.log_softmax(self.logits, 0), dim=1)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma = self.responsibilities(z)  # [B, K]
        var, c_var = logvar.exp()[:, None], self.logvars.exp()
        kl_gauss = 0.5 * (self.logvars + var / c_var + (mu[:, None] - self.means) ** 2 / c_var - 1 - logvar[:, None]).sum(2)
        log_pi = F.log_softmax(self.logits, 0)
        kl_cat = (gamma * (torch.log(gamma + 1e-10) - log_pi)).sum(1)
        return ((gamma * kl_gauss).sum(1) + kl_cat).mean()
