"""The CoT router: a small network that sends each reasoning path to student 1, student 2, or both.

Why this shape:

* **Three options, not two.** The router scores ``{s1 only, s2 only, both}``; the per-student mask is
  ``mask[:, 0] = y_s1 + y_both`` and ``mask[:, 1] = y_s2 + y_both``. "Both" is a real option with its
  own logit, so it is reachable and learnable rather than a threshold accident.
* **Straight-through Gumbel-softmax.** The forward pass uses a hard one-hot choice (the students see a
  clean 0/1 mask) while the backward pass uses the soft Gumbel-softmax probabilities, so the student
  losses ``masked_mean(nll_k, mask[:, k])`` reach the router's logits with a non-zero gradient.
  For path ``i`` that gradient is ``(nll_k[i] - masked_mean_k) / n_k``: a path whose loss on student
  ``k`` is *below* that student's current average lowers the objective by being routed there, so the
  router learns to send each path where it is learned best relative to that student's level, and to
  "both" when it is below average for both.
* **Balance term.** Left alone that signal collapses (route only the easiest paths). The paper's
  balance term maximises the entropy of the batch-mean assignment ``p̄`` over the three options;
  :meth:`CoTRouter.aux_loss` returns ``balance_weight * (log 3 - H(p̄))`` (0 at a perfectly balanced
  batch), computed from noise-free probabilities so it is a deterministic function of the logits.
* **Annealable temperature.** ``tau`` decays geometrically from ``tau`` to ``tau_min`` over training
  (:meth:`set_progress` / :meth:`set_epoch`); at evaluation (``router.eval()``) no noise is added and
  the choice is the argmax.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: Route codes as logged: 1 = student 1 only, 2 = student 2 only, 3 = both.
ROUTE_S1, ROUTE_S2, ROUTE_BOTH = 1, 2, 3
#: option index (0, 1, 2) -> which students it trains
OPTION_TO_MASK = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


@dataclass
class RouteDecision:
    """One routing decision for a batch.

    ``mask``: [B, 2] in {0, 1}, straight-through (carries the soft gradient); ``route``: [B] long in
    {1, 2, 3}; ``probs``: [B, 3] noise-free softmax over (s1, s2, both) for logs and the balance term;
    ``logits``: [B, 3].
    """

    mask: torch.Tensor
    route: torch.Tensor
    probs: torch.Tensor
    logits: torch.Tensor


def options_to_decision(y: torch.Tensor, logits: torch.Tensor, probs: torch.Tensor) -> RouteDecision:
    """Turn a [B, 3] (hard or straight-through) option tensor into a :class:`RouteDecision`."""
    mask = y @ OPTION_TO_MASK.to(device=y.device, dtype=y.dtype)
    route = y.detach().argmax(dim=-1) + 1
    return RouteDecision(mask=mask, route=route, probs=probs, logits=logits)


def balance_loss(probs: torch.Tensor) -> torch.Tensor:
    """``log K - H(mean_b probs[b])``: 0 when the batch's mean assignment is uniform, > 0 otherwise."""
    mean = probs.mean(dim=0).clamp_min(1e-9)
    entropy = -(mean * mean.log()).sum()
    return math.log(probs.shape[-1]) - entropy


class CoTRouter(nn.Module):
    """A learned router over frozen path embeddings (see module docstring).

    Parameters: ``embed_dim`` (encoder width), ``hidden`` (MLP width), ``tau``/``tau_min`` (Gumbel
    temperature schedule), ``balance_weight`` (weight of the balance term in :meth:`aux_loss`).
    """

    def __init__(self, embed_dim: int, hidden: int = 128, tau: float = 1.0, tau_min: float = 0.1,
                 balance_weight: float = 0.1, dropout: float = 0.0):
        super().__init__()
        if tau <= 0 or tau_min <= 0 or tau_min > tau:
            raise ValueError(f"need 0 < gumbel_tau_min <= gumbel_tau, got tau={tau}, tau_min={tau_min}")
        self.net = nn.Sequential(
            nn.Linear(embed_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 3)
        )
        # Start near uniform over the three options so no student is starved at step 0.
        nn.init.normal_(self.net[-1].weight, std=0.01)
        nn.init.zeros_(self.net[-1].bias)
        self.tau0 = float(tau)
        self.tau_min = float(tau_min)
        self.tau = float(tau)
        self.balance_weight = float(balance_weight)

    # -- temperature schedule -------------------------------------------------------------------
    def set_progress(self, frac: float) -> float:
        """Geometric anneal: ``tau = tau0 * (tau_min / tau0) ** frac`` for ``frac`` in [0, 1]."""
        frac = min(max(float(frac), 0.0), 1.0)
        self.tau = self.tau0 * (self.tau_min / self.tau0) ** frac
        return self.tau

    def set_epoch(self, epoch: int, total_epochs: int) -> float:
        """Anneal per epoch (0-based ``epoch``): first epoch at ``tau0``, last at ``tau_min``."""
        return self.set_progress(epoch / max(total_epochs - 1, 1))

    # -- routing ----------------------------------------------------------------------------------
    def forward(self, emb: torch.Tensor) -> RouteDecision:
        logits = self.net(emb.to(self.net[0].weight.dtype))
        probs = logits.softmax(dim=-1)
        if self.training:
            y = F.gumbel_softmax(logits, tau=self.tau, hard=True)
        else:
            y = F.one_hot(logits.argmax(dim=-1), 3).to(logits.dtype)
        return options_to_decision(y, logits, probs)

    def aux_loss(self, decision: RouteDecision) -> torch.Tensor:
        """The weighted balance term (already multiplied by ``balance_weight``)."""
        return self.balance_weight * balance_loss(decision.probs)


class RandomRouter(nn.Module):
    """The "random routing" ablation: a fixed, untrained assignment of each path to s1, s2 or both.

    The option is a hash of the path embedding, so a path keeps its (random) student across epochs
    (embeddings are cached and deterministic) and the three options are equally likely. It has no
    parameters, no gradient and no auxiliary loss.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = int(seed)

    def set_progress(self, frac: float) -> float:  # same hooks as CoTRouter
        return 0.0

    def set_epoch(self, epoch: int, total_epochs: int) -> float:
        return 0.0

    def forward(self, emb: torch.Tensor) -> RouteDecision:
        rows = emb.detach().float().cpu().round(decimals=4).numpy()
        opts = []
        for row in rows:
            h = hashlib.blake2b(row.tobytes(), digest_size=8, key=str(self.seed).encode()).digest()
            opts.append(int.from_bytes(h, "little") % 3)
        idx = torch.tensor(opts, device=emb.device)
        y = F.one_hot(idx, 3).to(torch.float32)
        return options_to_decision(y, torch.zeros_like(y), torch.full_like(y, 1.0 / 3))

    def aux_loss(self, decision: RouteDecision) -> torch.Tensor:
        return decision.mask.new_zeros(())
