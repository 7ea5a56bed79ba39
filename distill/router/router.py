"""The CoT router: a small network that sends each reasoning path to student 1, student 2, or both.

Why this shape:

* **Three options, not two.** The router scores ``{s1 only, s2 only, both}``; the per-student mask is
  ``mask[:, 0] = y_s1 + y_both`` and ``mask[:, 1] = y_s2 + y_both``. "Both" is a real option with its
  own logit, so it is reachable and learnable rather than a threshold accident.
* **Straight-through Gumbel-softmax for the choice, full-information cost for the gradient.** The
  forward pass samples a hard one-hot choice (the students see a clean 0/1 mask; Gumbel noise
  explores). Both students are run on *every* path anyway, so the router knows what each option
  would have cost and is trained on the expected cost of its (noise-free) probabilities,
  ``sum_o p_o * C_o``, an exact, low-variance gradient built from the students' own per-path
  losses (:func:`routing_cost`). Per student the losses are standardised over the batch,
  ``c_k = (nll_k - mean_k) / std_k``, because two students with different tokenizers have
  per-token losses on different scales; ``C = (c_1, c_2, c_1 + c_2)`` for (s1, s2, both). A path
  goes where it is learned best relative to that student's level, to "both" when it is below
  average for both, and never to a student on whom it is unlearnable.
  Why not only the straight-through gradient of the students' masked-mean losses (what the
  mask would give for free): it compares a path only with the other paths *already routed* to the
  same student, and for a student that receives no path it is ``+nll`` for every path, which
  pushes everything away from it -- an absorbing collapse. Measured on the routing probe: that
  signal was ~10x too weak to specialise and collapsed whole styles onto one student. The
  engine therefore applies the mask to the student losses as a constant (see ``MixtureModel``).
* **Balance term.** Left alone that signal collapses (route only the easiest paths). The paper's
  balance term maximises the entropy of the batch-mean assignment ``p̄`` over the three options;
  :meth:`CoTRouter.aux_loss` returns ``cost + balance_weight * (log 3 - H(p̄))`` (the balance
  part is 0 at a perfectly balanced batch), both from noise-free probabilities.
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


def routing_cost(nll1: torch.Tensor, nll2: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Cost [B, 3] of sending each path to (s1 only, s2 only, both), from per-path student losses.

    Each student's losses are standardised over the batch (``(nll - mean) / std``; all zeros for a
    batch of one), so the comparison is scale-free across tokenizers; "both" costs the sum. Inputs
    are detached: the router's cost must not train the students.
    """
    def standardise(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().float()
        if x.numel() < 2:
            return torch.zeros_like(x)
        return (x - x.mean()) / (x.std(unbiased=False) + eps)

    c1, c2 = standardise(nll1), standardise(nll2)
    return torch.stack([c1, c2, c1 + c2], dim=-1)


def expected_cost(probs: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``sum_o probs[b, o] * cost[b, o]`` (differentiable in ``probs``)."""
    return (probs * cost.to(probs.dtype)).sum(dim=-1).mean()


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

    def aux_loss(self, decision: RouteDecision, nll1: torch.Tensor | None = None,
                 nll2: torch.Tensor | None = None) -> torch.Tensor:
        """The router's own loss: expected routing cost (when the students' per-path losses are
        given) plus the balance term weighted by ``balance_weight``."""
        loss = self.balance_weight * balance_loss(decision.probs)
        if nll1 is not None and nll2 is not None:
            loss = loss + expected_cost(decision.probs, routing_cost(nll1, nll2))
        return loss


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

    def aux_loss(self, decision: RouteDecision, nll1: torch.Tensor | None = None,
                 nll2: torch.Tensor | None = None) -> torch.Tensor:
        return decision.mask.new_zeros(())
