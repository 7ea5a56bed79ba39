"""``MixtureModel``: the single ``nn.Module`` that holds everything that trains.

Why one module: Accelerate / DDP / DeepSpeed prepare exactly one model, so both students, the
router and the peer-teaching module live under one root and share one optimizer (with per-group
learning rates), one backward and one checkpoint.

The router and the peer module are reached only through the interfaces declared here
(:class:`Router`, :class:`PeerModule`), which :class:`~distill.router.router.CoTRouter`,
:class:`~distill.router.router.RandomRouter` and :class:`~distill.peer.module.PeerTeacher` implement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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


def _rows(part: dict[str, Any], idx: torch.Tensor) -> dict[str, Any]:
    return {k: (v[idx] if isinstance(v, torch.Tensor) else [v[i] for i in idx.tolist()]) for k, v in part.items()}


def _merge(first: torch.Tensor, second: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Rows of ``cat([first, second])`` put back in batch order (``order``: their batch indices)."""
    both = torch.cat([first, second.to(first.dtype)])
    return both[torch.argsort(order)]


class MixtureModel(nn.Module):
    """Two students plus an optional router and peer module.

    Student loss = ``masked_mean(nll1, mask[:,0]) + masked_mean(nll2, mask[:,1])``, the mask a constant;
    the router's ``aux_loss`` (expected routing cost + balance) and the peer loss are added when those
    modules are set (each already weighted). ``student2`` may be ``None`` (SFT baseline): then ``nll2``
    is zeros and column 1 of the mask is 0.

    **Routing saves compute.** The route is decided from the path embeddings before the students run,
    so each student runs the paths it learns with gradients and the others under ``no_grad``: those
    rows still give the router the student's loss on every path (its full-information cost), but cost
    no activations kept for backward and no backward. A frozen student runs every row under
    ``no_grad``. With ``peer_scope all`` a student also learns (from the ensemble) the paths it was not
    routed, so it keeps gradients on every row.
    """

    def __init__(self, student1: nn.Module, student2: nn.Module | None, router: Router | None = None,
                 peer: PeerModule | None = None, peer_scope: str = "co_routed"):
        super().__init__()
        self.student1 = student1
        self.student2 = student2
        self.router = router
        self.peer = peer
        self.peer_scope = peer_scope

    def _run(self, student: nn.Module, part: dict[str, Any], hidden: bool, grad_rows: torch.Tensor):
        """(StudentForward, nll [B]) with gradients only through the rows where ``grad_rows`` is true."""
        trainable = [p for p in student.parameters() if p.requires_grad]
        if not torch.is_grad_enabled() or (grad_rows.all() and trainable):
            return self._forward(student, part, hidden)
        idx_g = torch.nonzero(grad_rows if trainable else torch.zeros_like(grad_rows)).flatten()
        idx_n = torch.nonzero(~grad_rows if trainable else torch.ones_like(grad_rows)).flatten()
        with torch.no_grad():
            out_n, nll_n = self._forward(student, _rows(part, idx_n), hidden)
        if idx_g.numel() == 0:
            # no row learns here: touch the trainable weights so DDP sees every parameter used
            zero = sum((p.sum() * 0.0 for p in trainable), nll_n.new_zeros(()))
            return out_n, nll_n + zero
        out_g, nll_g = self._forward(student, _rows(part, idx_g), hidden)
        order = torch.cat([idx_g, idx_n])
        nll = _merge(nll_g, nll_n, order)
        if self.peer is None:  # nothing reads the logits: do not pay for a merged copy
            return out_g, nll
        hs = None if not hidden else (_merge(out_g.hidden_states[-1], out_n.hidden_states[-1], order),)
        return StudentForward(_merge(out_g.logits, out_n.logits, order), hs), nll

    @staticmethod
    def _forward(student: nn.Module, part: dict[str, Any], hidden: bool):
        out = student(input_ids=part["input_ids"], attention_mask=part["attention_mask"],
                      output_hidden_states=hidden, use_cache=False)
        hs = (out.hidden_states[-1],) if hidden else None
        return StudentForward(out.logits, hs), per_example_nll(out.logits, part["labels"])

    def _usable(self, batch: dict[str, Any], mask: torch.Tensor) -> torch.Tensor:
        """[B, 2] 1.0 where the path fits the student (``batch[k]["usable"]``; all ones when absent)."""
        cols = [batch[k].get("usable") if k in batch else None for k in ("s1", "s2")]
        return torch.stack([torch.ones(mask.shape[0], device=mask.device) if c is None else c.to(mask.device).float()
                            for c in cols], dim=-1)

    def _route(self, batch: dict[str, Any]):
        """(mask [B, 2], route [B], probs or None, decision or None), decided before the students run."""
        ids = batch["s1"]["input_ids"]
        if self.router is not None:
            decision = self.router(batch["route_emb"])
            return decision.mask.float(), decision.route, decision.probs, decision
        bsz = ids.shape[0]
        mask = torch.ones(bsz, 2, device=ids.device)
        if self.student2 is None:
            mask[:, 1] = 0
        code = 3 if self.student2 is not None else 1
        return mask, torch.full((bsz,), code, dtype=torch.long, device=ids.device), None, None

    def forward(self, batch: dict[str, Any]) -> MixtureOutput:
        hidden = self.peer is not None and self.peer.needs_hidden_states
        mask, route, probs, decision = self._route(batch)
        usable = self._usable(batch, mask)
        mask = mask * usable  # a path whose answer did not fit a student's window never trains it
        learns = mask.detach() > 0.5
        if self.peer is not None and self.peer_scope == "all":
            learns = torch.ones_like(learns)
        out1, nll1 = self._run(self.student1, batch["s1"], hidden, learns[:, 0])
        out2, nll2 = (None, torch.zeros_like(nll1)) if self.student2 is None else \
            self._run(self.student2, batch["s2"], hidden, learns[:, 1])
        mask = mask.to(nll1.dtype)
        # The mask selects which student learns each path; it is a constant here. The router learns
        # from its own expected-cost loss over both students' per-path losses (distill.router.router).
        loss1 = masked_mean(nll1, mask[:, 0].detach())
        loss2 = masked_mean(nll2, mask[:, 1].detach())
        loss = loss1 + loss2
        logs = {"loss_s1": float(loss1.detach()), "loss_s2": float(loss2.detach())}
        if decision is not None:
            cost1, cost2 = _worst_if_unusable(nll1, usable[:, 0]), _worst_if_unusable(nll2, usable[:, 1])
            aux = self.router.aux_loss(decision, cost1, None if out2 is None else cost2)
            loss = loss + aux
            logs["router_aux"] = float(aux.detach())
        if self.peer is not None and out2 is not None:
            peer = self.peer(out1, out2, batch, mask)
            loss = loss + peer.loss
            logs["peer"] = float(peer.loss.detach())
            logs.update({f"peer_{k}": float(v) for k, v in peer.logs.items()})
        return MixtureOutput(loss=loss, nll1=nll1, nll2=nll2, mask=mask, route=route, route_probs=probs, logs=logs)
