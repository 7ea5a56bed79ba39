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
  losses (:func:`distill.losses.routing_cost`). Per student the losses are standardised,
  ``c_k = (nll_k - mean_k) / std_k``, because two students with different tokenizers have
  per-token losses on different scales; ``C = (c_1, c_2, c_1 + c_2)`` for (s1, s2, both). A path
  goes where it is learned best relative to that student's level, to "both" when it is below
  average for both, and never to a student on whom it is unlearnable.
  ``mean_k``/``std_k`` are **running** statistics (an EMA over training steps, kept as buffers so
  they checkpoint), not the current batch's: the engine batches paths of similar length
  together, and lengths follow the reasoning style, so a batch is often one style. Standardising
  within such a batch subtracts exactly the style's own mean and erases the signal (measured on
  the routing probe: the unlearnable style stayed at uniform routing probabilities).
  Why not only the straight-through gradient of the students' masked-mean losses (what the
  mask would give for free): it compares a path only with the other paths *already routed* to the
  same student, and for a student that receives no path it is ``+nll`` for every path, which
  pushes everything away from it -- an absorbing collapse. Measured on the routing probe: that
  signal was ~10x too weak to specialise and collapsed whole styles onto one student. The
  engine therefore applies the mask to the student losses as a constant (see ``MixtureModel``).
* **Balance term.** Left alone that signal collapses (route only the easiest paths). The paper's
  balance term maximises the entropy of the mean assignment ``p̄`` over the three options;
  :meth:`CoTRouter.aux_loss` returns ``cost + balance_weight * (log 3 - H(p̄))`` (the balance
  part is 0 at a perfectly balanced assignment), both from noise-free probabilities. ``p̄`` is the
  mean over this batch **and a bank of recently seen path embeddings** (re-scored by the current
  router, so the gradient is exact): the entropy of a one-style batch's own mean would force
  every style to be spread evenly over the students, the opposite of routing.
* **One state across ranks.** Under DDP or DeepSpeed each rank sees a different batch, but the
  running statistics and the bank must describe *all* of them (else each rank standardises by
  its own shard and only rank 0's state is checkpointed). When ``torch.distributed`` runs with
  more than one process, every training call of :meth:`CoTRouter.aux_loss` all-gathers the
  batch's per-path losses, embeddings and costs (in rank order; batches may differ in size) and
  applies the same update on every rank, so the buffers stay identical by construction and equal
  to one process fed the concatenated batches. DDP must therefore not overwrite them with rank
  0's copy (``broadcast_buffers=False``, set in :func:`distill.train.setup.make_accelerator`;
  DeepSpeed broadcasts no buffers). The gradient stays per rank (this rank's probabilities plus
  the shared bank); DDP / DeepSpeed average it. Every rank must make the same training calls,
  which the engine guarantees (every rank runs the same number of micro-batches).
* **Or a coverage floor, with a margin** (``balance="coverage"``, ``margin > 0``). The entropy term
  pulls the mean assignment towards 1/3 per option, so two thirds of the paths must be exclusive
  and each student loses a third of its data; mean-centred costs push every path that is above a
  student's average away from it. Measured on the routing probe (bench/RESULTS.md): the router then
  took most ``program`` and ``fwd_bwd`` paths from student 2 as well as the unlearnable ``tot``,
  and student 2 ended below its solo run on every seed. The objective counts only the loss of the
  student a path is given to, not what the other student loses by never seeing it. With a margin
  ``m`` the cost is ``z_k - m``: a path trains both students unless it is an outlier (``z_k > m``)
  for one of them, and :func:`~distill.losses.coverage_loss` only keeps each student's share above
  ``min_share`` (against collapse) without pushing paths away from "both".
* **Full information every ``cost_every``-th step** (and until the statistics and bank exist): a *cost
  step* (``RouteDecision.full_cost``) runs every path on both students and updates both; in between
  each student runs only its own paths (the forwards routing saves) and the expected cost is over the
  bank, re-scored by the current router. The call counter is a buffer: ranks and resumes agree.
* **Annealable temperature.** ``tau`` decays geometrically from ``tau`` to ``tau_min`` over training
  (:meth:`set_progress` / :meth:`set_epoch`); at evaluation (``router.eval()``) no noise is added and
  the choice is the argmax.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from distill.losses import balance_loss, coverage_loss, expected_cost, routing_cost
from distill.router.config import BALANCE_MODES

#: Route codes as logged: 1 = student 1 only, 2 = student 2 only, 3 = both.
ROUTE_S1, ROUTE_S2, ROUTE_BOTH = 1, 2, 3
#: option index (0, 1, 2) -> which students it trains
OPTION_TO_MASK = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


@dataclass
class RouteDecision:
    """One routing decision for a batch.

    ``mask``: [B, 2] in {0, 1}, straight-through (carries the soft gradient); ``route``: [B] long in
    {1, 2, 3}; ``probs``: [B, 3] noise-free softmax over (s1, s2, both) for logs and the balance term;
    ``logits``: [B, 3]; ``emb``: the [B, D] inputs (the router's balance bank keeps them);
    ``full_cost``: whether it wants both students' loss on every path (a cost step, module docstring).
    """

    mask: torch.Tensor
    route: torch.Tensor
    probs: torch.Tensor
    logits: torch.Tensor
    emb: torch.Tensor | None = None
    full_cost: bool = True


def options_to_decision(y: torch.Tensor, logits: torch.Tensor, probs: torch.Tensor,
                        emb: torch.Tensor | None = None, full_cost: bool = True) -> RouteDecision:
    """Turn a [B, 3] (hard or straight-through) option tensor into a :class:`RouteDecision`."""
    mask = y @ OPTION_TO_MASK.to(device=y.device, dtype=y.dtype)
    route = y.detach().argmax(dim=-1) + 1
    return RouteDecision(mask=mask, route=route, probs=probs, logits=logits, emb=emb, full_cost=full_cost)


def _world_size() -> int:
    """Processes in the default ``torch.distributed`` group; 1 when it is not initialised."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``x`` ([B_r, ...], same trailing shape and dtype on every rank),
    concatenated in rank order; the same tensor on every rank. ``B_r`` may differ per rank (the
    sizes are gathered first and the rows padded to the largest). A collective: every rank of the
    default group must call it, in the same order."""
    dist = torch.distributed
    world = dist.get_world_size()
    x = x.detach().contiguous()
    n = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    counts = [int(c) for c in torch.cat(sizes).tolist()]
    most = max(counts)
    if x.shape[0] < most:
        x = torch.cat([x, x.new_zeros((most - x.shape[0], *x.shape[1:]))])
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x)
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


class CoTRouter(nn.Module):
    """A learned router over frozen path embeddings (see module docstring).

    Parameters: ``embed_dim`` (encoder width), ``hidden`` (MLP width), ``tau``/``tau_min`` (Gumbel
    temperature schedule), ``balance_weight`` (weight of the balance term in :meth:`aux_loss`),
    ``momentum`` (EMA factor per training step of the running loss statistics; 0.95 averages over
    ~20 batches, enough to span every style of a length-grouped epoch), ``bank_size`` (recent path
    embeddings the balance term averages over besides the batch), ``cost_every`` (a cost step every
    that many training calls, module docstring).

    Buffers (saved in checkpoints, so a resumed run routes identically): ``loss_stats`` [2, 2]
    (running mean and std of each student's per-path loss), ``stats_ready`` (0 until the first
    training batch sets them), ``bank`` [bank_size, D] with ``bank_fill`` / ``bank_next`` (a ring),
    ``calls`` (training forwards so far: picks the cost steps).
    Under ``torch.distributed`` they are updated from every rank's batch and identical on every rank
    (module docstring), so the one copy a checkpoint keeps is right for every rank on resume.
    """

    def __init__(self, embed_dim: int, hidden: int = 128, tau: float = 1.0, tau_min: float = 0.1,
                 balance_weight: float = 0.1, dropout: float = 0.0, momentum: float = 0.95,
                 bank_size: int = 256, cost_every: int = 1, balance: str = "entropy",
                 margin: float = 0.0, min_share: float = 0.25):
        super().__init__()
        if balance not in BALANCE_MODES:
            raise ValueError(f"router balance must be one of {', '.join(BALANCE_MODES)}, got {balance!r}")
        if not 0.0 < min_share <= 1.0:
            raise ValueError(f"router min_share must be in (0, 1], got {min_share}")
        self.balance, self.margin, self.min_share = balance, float(margin), float(min_share)
        if tau <= 0 or tau_min <= 0 or tau_min > tau:
            raise ValueError(f"need 0 < gumbel_tau_min <= gumbel_tau, got tau={tau}, tau_min={tau_min}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"router momentum must be in [0, 1), got {momentum}")
        if int(cost_every) < 1:
            raise ValueError(f"router cost_every must be >= 1, got {cost_every}")  # checked by RouterConfig too
        self.momentum = float(momentum)
        self.cost_every = int(cost_every)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("loss_stats", torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        self.register_buffer("stats_ready", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank", torch.zeros(int(bank_size), int(embed_dim)))
        self.register_buffer("bank_cost", torch.zeros(int(bank_size), 3))
        self.register_buffer("bank_fill", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank_next", torch.zeros((), dtype=torch.long))
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
        full = True
        if self.training:
            y = F.gumbel_softmax(logits, tau=self.tau, hard=True)
            full = self._cost_step()
        else:
            y = F.one_hot(logits.argmax(dim=-1), 3).to(logits.dtype)
        return options_to_decision(y, logits, probs, emb, full_cost=full)

    def _cost_step(self) -> bool:
        """Count a training call; True on a cost step (module docstring)."""
        n, ready = int(self.calls), bool(int(self.stats_ready)) and (int(self.bank_fill) > 0 or not len(self.bank))
        self.calls.fill_(n + 1)
        return self.cost_every <= 1 or not ready or n % self.cost_every == 0

    @torch.no_grad()
    def _update_stats(self, nll1: torch.Tensor, nll2: torch.Tensor) -> None:
        """Fold a training batch's losses into ``loss_stats`` (EMA; the first batch sets them).
        Distributed: the batch is every rank's paths (gathered), so every rank makes the same update."""
        m = self.momentum if int(self.stats_ready) else 0.0
        losses = (nll1.detach().float(), nll2.detach().float())
        if _world_size() > 1:
            both = gather_rows(torch.stack(losses, dim=1))
            losses = (both[:, 0].contiguous(), both[:, 1].contiguous())
        for k, x in enumerate(losses):
            mean = m * self.loss_stats[k, 0] + (1 - m) * x.mean()
            var = m * self.loss_stats[k, 1] ** 2 + (1 - m) * ((x - mean) ** 2).mean()
            self.loss_stats[k, 0] = mean
            self.loss_stats[k, 1] = var.clamp_min(1e-12).sqrt()
        self.stats_ready.fill_(1)

    @torch.no_grad()
    def _remember(self, emb: torch.Tensor, cost: torch.Tensor) -> None:
        """Write a training batch's embeddings and routing costs into the bank (a ring buffer).
        Distributed: every rank's rows, in rank order, so every rank writes the same rows."""
        size = self.bank.shape[0]
        if size == 0:
            return
        emb, cost = emb.detach(), cost.detach()
        if _world_size() > 1:  # one collective for both: [B, D + 3] in the bank's dtype
            width = emb.shape[-1]
            both = gather_rows(torch.cat([emb.to(self.bank.dtype), cost.to(self.bank.dtype)], dim=1))
            emb, cost = both[:, :width], both[:, width:]
        rows = emb[-size:].to(self.bank.dtype)
        idx = (self.bank_next + torch.arange(len(rows), device=self.bank.device)) % size
        self.bank[idx] = rows
        self.bank_cost[idx] = cost[-size:].to(self.bank_cost.dtype)
        self.bank_next.copy_((self.bank_next + len(rows)) % size)
        self.bank_fill.copy_(torch.clamp(self.bank_fill + len(rows), max=size))

    def _balance(self, probs: torch.Tensor) -> torch.Tensor:
        """The balance term over [N, 3] probabilities: the entropy of the mean assignment, or a
        floor of ``min_share`` on each student's share (module docstring)."""
        return balance_loss(probs) if self.balance == "entropy" else coverage_loss(probs, self.min_share)

    def aux_loss(self, decision: RouteDecision, nll1: torch.Tensor | None = None,
                 nll2: torch.Tensor | None = None) -> torch.Tensor:
        """The router's own loss over this batch and the bank of recent paths: expected routing
        cost (when the students' per-path losses are given) plus ``balance_weight`` times the
        balance term (see the module docstring). When training, the running loss statistics are
        updated with this batch first, and the batch joins the bank afterwards (under
        ``torch.distributed``, every rank's batch: a collective, so every rank must call it).
        Without the losses (a partial step, ``decision.full_cost`` False) the expected cost is over
        the bank only and nothing is updated or remembered."""
        has_cost = nll1 is not None and nll2 is not None
        if has_cost and self.training:
            self._update_stats(nll1, nll2)
        probs = decision.probs
        cost = (routing_cost(nll1, nll2, self.loss_stats, self.margin) if has_cost
                else torch.zeros_like(probs.detach()))
        fill = int(self.bank_fill)
        if fill:
            bank_probs = self.net(self.bank[:fill].clone().to(self.net[0].weight.dtype)).softmax(dim=-1)
            all_probs = torch.cat([probs, bank_probs.to(probs.dtype)])
            all_cost = torch.cat([cost, self.bank_cost[:fill].to(cost.dtype)])
        else:
            all_probs, all_cost = probs, cost
        loss = self.balance_weight * self._balance(all_probs)
        if has_cost:
            loss = loss + expected_cost(all_probs, all_cost)
        elif fill:
            loss = loss + expected_cost(bank_probs.to(probs.dtype), self.bank_cost[:fill].to(probs.dtype))
        if self.training and decision.emb is not None and (has_cost or decision.full_cost):
            self._remember(decision.emb, cost)
        return loss


class RandomRouter(nn.Module):
    """The "random routing" ablation: a fixed, untrained assignment of each path to s1, s2 or both.

    The option is a hash of the path embedding, so a path keeps its (random) student across epochs
    (embeddings are cached and deterministic) and the three options are equally likely. It has no
    parameters, no gradient and no auxiliary loss, so it never asks for a cost step (``full_cost`` False).
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
        return options_to_decision(y, torch.zeros_like(y), torch.full_like(y, 1.0 / 3), full_cost=False)  # no cost

    def aux_loss(self, decision: RouteDecision, nll1: torch.Tensor | None = None,
                 nll2: torch.Tensor | None = None) -> torch.Tensor:
        return decision.mask.new_zeros(())


class StyleRouter(nn.Module):
    """``--routing styles``: a fixed assignment by reasoning style, e.g. ``{"tot": ROUTE_S2}``.

    For a style the user knows one student cannot learn (its paths overflow that student's window)
    and as the benchmark's *style-oracle* arm: the routing a learned router should find on the
    routing probe, without learning it, so the bench can tell what routing itself is worth from how
    well the router finds it. A style not in ``pins`` trains both students. No parameters, no
    gradient, no auxiliary loss and no cost step (``full_cost`` False), like :class:`RandomRouter`.
    The mixture passes the batch's styles (``uses_styles``)."""

    uses_styles = True

    def __init__(self, pins: dict[str, int]):
        super().__init__()
        bad = {s: c for s, c in pins.items() if c not in (ROUTE_S1, ROUTE_S2, ROUTE_BOTH)}
        if bad:
            raise ValueError(f"route codes must be 1, 2 or 3, got {bad}")
        self.pins = dict(pins)

    def set_progress(self, frac: float) -> float:  # same hooks as CoTRouter
        return 0.0

    def set_epoch(self, epoch: int, total_epochs: int) -> float:
        return 0.0

    def forward(self, emb: torch.Tensor | None, styles: list[str] | None = None) -> RouteDecision:
        if styles is None:
            raise ValueError("StyleRouter needs the batch's styles (batch['meta']['styles'])")
        device = emb.device if emb is not None else OPTION_TO_MASK.device
        idx = torch.tensor([self.pins.get(str(s), ROUTE_BOTH) - 1 for s in styles], device=device)
        y = F.one_hot(idx, 3).to(torch.float32)
        return options_to_decision(y, torch.zeros_like(y), y.clone(), full_cost=False)

    def aux_loss(self, decision: RouteDecision, nll1: torch.Tensor | None = None,
                 nll2: torch.Tensor | None = None) -> torch.Tensor:
        return decision.mask.new_zeros(())
