"""``MixtureModel``: the single ``nn.Module`` that holds everything that trains.

Why one module: Accelerate / DDP / DeepSpeed prepare exactly one model, so both students, the
router and the peer-teaching module live under one root and share one optimizer (with per-group
learning rates), one backward and one checkpoint.

The router and the peer module are reached only through the interfaces declared here
(:class:`Router`, :class:`PeerModule`), which :class:`~distill.router.router.CoTRouter`,
:class:`~distill.router.router.RandomRouter`, :class:`~distill.router.router.StyleRouter` and :class:`~distill.peer.module.PeerTeacher` implement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import nn

from distill.losses import masked_mean, per_example_nll


@runtime_checkable
class Router(Protocol):
    """Sends each path to student 1, student 2 or both (route codes 1, 2, 3)."""

    def __call__(self, emb: torch.Tensor) -> Any:
        """[B, D] path embeddings -> a ``RouteDecision`` (``mask`` [B, 2], ``route`` [B], ``probs`` [B, 3])."""

    def aux_loss(self, decision: Any, nll1: torch.Tensor, nll2: torch.Tensor | None) -> torch.Tensor:
        """The router's own loss (already weighted) from both students' detached per-path losses [B]."""

    def set_progress(self, frac: float) -> float:
        """Anneal to training progress ``frac`` in [0, 1]; returns the temperature now in use."""


@runtime_checkable
class PeerModule(Protocol):
    """Peer teaching between the students; ``needs_hidden_states`` asks for ``output_hidden_states``."""

    needs_hidden_states: bool

    def __call__(self, out1: Any, out2: Any, batch: dict[str, Any], mask: torch.Tensor) -> Any:
        """Both students' HF outputs, the batch and the [B, 2] route mask -> ``PeerOutput(loss, logs)``."""


@dataclass
class MixtureOutput:
    """What one forward of the mixture produced.

    ``loss``: scalar to backpropagate (students + router aux + peer); ``nll1``/``nll2``: [B] each
    student's per-path NLL (zeros for a missing student 2); ``mask``: [B, 2] which student learns each
    path; ``route``: [B] codes 1 / 2 / 3 (both); ``route_probs``: [B, 3] router probabilities or
    ``None`` without a learned router; ``logs``: scalar floats for metrics.jsonl.
    """

    loss: torch.Tensor
    nll1: torch.Tensor
    nll2: torch.Tensor
    mask: torch.Tensor
    route: torch.Tensor
    route_probs: torch.Tensor | None
    logs: dict[str, float] = field(default_factory=dict)
    #: True when ``forward(batch, backward=...)`` already backpropagated ``loss`` (then detached)
    backward_done: bool = False


@dataclass
class StudentForward:
    """One student's forward over a batch: ``logits`` [B, T, V] and ``hidden_states`` (the last layer's
    [B, T, H] as a one-tuple, or ``None``), the shape of a Hugging Face output that peer teaching reads."""

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None


def _worst_if_unusable(nll: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """Detached per-path losses for the router, where a path a student cannot see (no labelled token,
    so its NLL reads 0, "perfectly learned") counts as the student's worst path of the batch."""
    nll = nll.detach()
    ok = usable > 0.5
    if ok.all() or not ok.any():
        return nll
    return torch.where(ok, nll, nll[ok].max())


def _backward(backward: Callable[[torch.Tensor], Any], loss: torch.Tensor) -> None:
    """``backward(loss)`` outside any autocast region (the forward may run under one)."""
    with torch.autocast(device_type=loss.device.type, enabled=False):
        backward(loss)


def _rows(part: dict[str, Any], idx: torch.Tensor) -> dict[str, Any]:
    return {k: (v[idx] if isinstance(v, torch.Tensor) else [v[i] for i in idx.tolist()]) for k, v in part.items()}


def _merge(first: torch.Tensor, second: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Rows of ``cat([first, second])`` put back in batch order (``order``: their batch indices)."""
    both = torch.cat([first, second.to(first.dtype)])
    return both[torch.argsort(order)]


@dataclass
class _Ran:
    """One student's forward: ``out`` over the batch in order (``idx`` None) or over the batch rows
    ``idx`` in that order; ``nll`` [B] (NaN on rows not run); ``extra``: a 0 touching every trainable
    weight when no row had gradients (DDP must see every parameter used)."""

    out: StudentForward
    idx: torch.Tensor | None
    nll: torch.Tensor
    extra: torch.Tensor | float = 0.0

    def rows(self, sel: torch.Tensor) -> StudentForward:
        """The output rows of batch rows ``sel`` (which this forward ran); a view when they lead it."""
        pos = sel
        if self.idx is not None:
            inv = torch.full((self.nll.shape[0],), -1, dtype=torch.long, device=sel.device)
            inv[self.idx] = torch.arange(self.idx.numel(), device=sel.device)
            pos = inv[sel]
        n = pos.numel()
        lead = bool((pos == torch.arange(n, device=pos.device)).all())
        pick = (lambda t: t[:n]) if lead else (lambda t: t[pos])  # noqa: E731
        hs = None if self.out.hidden_states is None else (pick(self.out.hidden_states[-1]),)
        return StudentForward(pick(self.out.logits), hs)


class MixtureModel(nn.Module):
    """Two students plus an optional router and peer module.

    Student loss = ``masked_mean(nll1, mask[:,0]) + masked_mean(nll2, mask[:,1])``, the mask a constant;
    the router's ``aux_loss`` (expected routing cost + balance) and the peer loss are added when those
    modules are set (each already weighted). ``student2`` may be ``None`` (SFT baseline): then ``nll2``
    is zeros and column 1 of the mask is 0.

    **Routing saves compute.** The route is decided from the path embeddings before the students run,
    so each student runs the paths it learns with gradients. On a router *cost step*
    (``decision.full_cost``, every ``--router_cost_every``-th micro-batch) it also runs the others
    under ``no_grad``: they give the router the student's loss on every path (its full-information
    cost) but keep no activations and pay no backward. On the other steps (and always under random
    routing, which learns no cost) a student does not run the paths not routed to it at all: their
    ``nll`` reads NaN (unknown) and peer teaching (scope ``co_routed``) sees the co-routed rows only,
    which both students ran. A frozen student runs its rows under ``no_grad``. With ``peer_scope
    all`` a student also learns (from the ensemble) the paths it was not routed, so it keeps
    gradients on every row and every step is a full one.
    """

    def __init__(self, student1: nn.Module, student2: nn.Module | None, router: Router | None = None,
                 peer: PeerModule | None = None, peer_scope: str = "co_routed"):
        super().__init__()
        self.student1 = student1
        self.student2 = student2
        self.router = router
        self.peer = peer
        self.peer_scope = peer_scope

    def _run(self, student: nn.Module, part: dict[str, Any], hidden: bool, grad_rows: torch.Tensor,
             need_rows: torch.Tensor, first: torch.Tensor) -> _Ran:
        """Gradients only through the rows where ``grad_rows`` is true, no forward at all on rows where
        ``need_rows`` is false; the rows of ``first`` lead the gradient rows (the peer reads them)."""
        trainable = [p for p in student.parameters() if p.requires_grad]
        if not torch.is_grad_enabled() or (grad_rows.all() and trainable):
            out, nll = self._forward(student, part, hidden)
            return _Ran(out, None, nll)
        g = grad_rows & need_rows if trainable else torch.zeros_like(grad_rows)
        idx_g = torch.cat([torch.nonzero(g & first).flatten(), torch.nonzero(g & ~first).flatten()])
        idx_n = torch.nonzero(need_rows & ~g).flatten()
        idx_x = torch.nonzero(~need_rows & ~g).flatten()
        nan = torch.full((idx_x.numel(),), float("nan"), device=grad_rows.device)
        out_n, nll_n = None, nan[:0]
        if idx_n.numel():
            with torch.no_grad():
                out_n, nll_n = self._forward_idx(student, part, hidden, idx_n)
        order_all = torch.cat([idx_g, idx_n, idx_x])

        def nll_of(nll_g: torch.Tensor) -> torch.Tensor:  # [B] in batch order, NaN on the rows not run
            return _merge(torch.cat([nll_g, nll_n.to(nll_g.dtype)]), nan, order_all)
        if idx_g.numel() == 0:
            # no row learns here: touch the trainable weights so DDP sees every parameter used
            zero = sum((p.sum() * 0.0 for p in trainable), nll_n.new_zeros(()))
            if out_n is None:
                out_n = StudentForward(nan.new_zeros((0, 1, 1)), None if not hidden else (nan.new_zeros((0, 1, 1)),))
            return _Ran(out_n, None if idx_x.numel() == 0 else idx_n, nll_of(nll_n[:0]), zero)
        out_g, nll_g = self._forward_idx(student, part, hidden, idx_g)
        nll = nll_of(nll_g)
        if self.peer is None or idx_n.numel() == 0:  # nothing reads a merged copy of the logits
            return _Ran(out_g, idx_g, nll)
        order = torch.cat([idx_g, idx_n])
        hs = None if not hidden else (_merge(out_g.hidden_states[-1], out_n.hidden_states[-1], order),)
        merged = StudentForward(_merge(out_g.logits, out_n.logits, order), hs)
        return _Ran(merged, None, nll) if idx_x.numel() == 0 else _Ran(merged, order.sort().values, nll)

    def _forward_idx(self, student: nn.Module, part: dict[str, Any], hidden: bool, idx: torch.Tensor | None):
        return self._forward(student, part if idx is None else _rows(part, idx), hidden)

    @staticmethod
    def _forward(student: nn.Module, part: dict[str, Any], hidden: bool):
        out = student(input_ids=part["input_ids"], attention_mask=part["attention_mask"],
                      output_hidden_states=hidden, use_cache=False)
        hs = (out.hidden_states[-1],) if hidden else None
        return StudentForward(out.logits, hs), per_example_nll(out.logits, part["labels"])

    def _full_step(self, decision: Any, learns: torch.Tensor) -> bool:
        """Whether every student runs every path this step (see the class docstring)."""
        # never from this rank's rows alone (e.g. "all rows learned"): a cost step runs collectives in
        # the router, so every rank must take the same branch
        if decision is None or not torch.is_grad_enabled():
            return True
        if self.peer is not None and getattr(self.peer, "scope", "co_routed") != "co_routed":
            return True
        return bool(getattr(decision, "full_cost", True))

    def _usable(self, batch: dict[str, Any], mask: torch.Tensor) -> torch.Tensor:
        """[B, 2] 1.0 where the path fits the student (``batch[k]["usable"]``; all ones when absent)."""
        cols = [batch[k].get("usable") if k in batch else None for k in ("s1", "s2")]
        return torch.stack([torch.ones(mask.shape[0], device=mask.device) if c is None else c.to(mask.device).float()
                            for c in cols], dim=-1)

    def _route(self, batch: dict[str, Any]):
        """(mask [B, 2], route [B], probs or None, decision or None), decided before the students run."""
        ids = batch["s1"]["input_ids"]
        if self.router is not None:
            if getattr(self.router, "uses_styles", False):  # a fixed assignment by style (StyleRouter)
                decision = self.router(batch.get("route_emb"), styles=batch.get("meta", {}).get("styles"))
            else:
                decision = self.router(batch["route_emb"])
            return decision.mask.float(), decision.route, decision.probs, decision
        bsz = ids.shape[0]
        mask = torch.ones(bsz, 2, device=ids.device)
        if self.student2 is None:
            mask[:, 1] = 0
        code = 3 if self.student2 is not None else 1
        return mask, torch.full((bsz,), code, dtype=torch.long, device=ids.device), None, None

    def forward(self, batch: dict[str, Any], backward: Callable[[torch.Tensor], Any] | None = None) -> MixtureOutput:
        """One step's losses. With ``backward`` (e.g. ``accelerator.backward``; single process only: DDP
        and DeepSpeed need the one backward after the forward) and no peer module, the backward is split
        per student: student 1's loss is backpropagated before student 2 runs, so only one student's
        activations are alive at a time; the gradients are those of the single backward (the losses
        share no graph: the router's costs are detached). Peer teaching couples the two graphs, so with
        a peer module the loss is returned for one combined backward (``backward_done`` False)."""
        hidden = self.peer is not None and self.peer.needs_hidden_states
        mask, route, probs, decision = self._route(batch)
        usable = self._usable(batch, mask)
        mask = mask * usable  # a path whose answer did not fit a student's window never trains it
        learns = mask.detach() > 0.5
        if self.peer is not None and self.peer_scope == "all":
            learns = torch.ones_like(learns)
        full = self._full_step(decision, learns)
        need = torch.ones_like(learns) if full else learns
        co = learns[:, 0] & learns[:, 1]
        split = backward is not None and self.peer is None and torch.is_grad_enabled()
        ran1 = self._run(self.student1, batch["s1"], hidden, learns[:, 0], need[:, 0], co)
        nll1 = ran1.nll
        mask = mask.to(nll1.dtype)
        # The mask selects which student learns each path; it is a constant here. The router learns
        # from its own expected-cost loss over both students' per-path losses (distill.router.router).
        # A path a student did not run (NaN) is one it does not learn: it weighs 0 in its loss.
        loss1 = masked_mean(torch.where(nll1.isnan(), 0.0, nll1), mask[:, 0].detach()) + ran1.extra
        if split and loss1.requires_grad:  # free student 1's activations before student 2 runs
            _backward(backward, loss1)
            ran1.out, loss1, nll1 = None, loss1.detach(), nll1.detach()
        ran2 = None if self.student2 is None else self._run(self.student2, batch["s2"], hidden, learns[:, 1],
                                                            need[:, 1], co)
        nll2 = torch.zeros_like(nll1) if ran2 is None else ran2.nll
        loss2 = masked_mean(torch.where(nll2.isnan(), 0.0, nll2), mask[:, 1].detach()) + \
            (0.0 if ran2 is None else ran2.extra)
        loss = loss1 + loss2
        logs = {"loss_s1": float(loss1.detach()), "loss_s2": float(loss2.detach())}
        if decision is not None:
            if full:
                cost1, cost2 = _worst_if_unusable(nll1, usable[:, 0]), _worst_if_unusable(nll2, usable[:, 1])
                aux = self.router.aux_loss(decision, cost1, None if ran2 is None else cost2)
            else:  # a partial step: the router learns from its bank of measured costs
                aux = self.router.aux_loss(decision, None, None)
            loss = loss + aux
            logs["router_aux"] = float(aux.detach())
        if self.peer is not None and ran2 is not None:
            if ran1.idx is None and ran2.idx is None:
                peer = self.peer(ran1.out, ran2.out, batch, mask)
            else:  # the co-routed rows only: what peer scope co_routed reads, and what both students ran
                sel = torch.nonzero(co).flatten()
                sub = {k: _rows(batch[k], sel) for k in ("s1", "s2")}
                peer = self.peer(ran1.rows(sel), ran2.rows(sel), sub, mask[sel])
            loss = loss + peer.loss
            logs["peer"] = float(peer.loss.detach())
            logs.update({f"peer_{k}": float(v) for k, v in peer.logs.items()})
        if split:  # the rest: student 2's loss and the router's (loss1 is detached by now)
            if loss.requires_grad:
                _backward(backward, loss)
            loss = loss.detach()
        return MixtureOutput(loss=loss, nll1=nll1, nll2=nll2, mask=mask, route=route, route_probs=probs, logs=logs,
                             backward_done=split)
