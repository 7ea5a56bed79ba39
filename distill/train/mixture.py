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


class MixtureModel(nn.Module):
    """Two students plus an optional router and peer module.

    Student loss = ``masked_mean(nll1, mask[:,0]) + masked_mean(nll2, mask[:,1])``, the mask a constant;
    the router's ``aux_loss`` (expected routing cost + balance) and the peer loss are added when those
    modules are set (each already weighted). ``student2`` may be ``None`` (SFT baseline): then ``nll2``
    is zeros and column 1 of the mask is 0.
    """

    def __init__(self, student1: nn.Module, student2: nn.Module | None, router: Router | None = None,
                 peer: PeerModule | None = None):
        super().__init__()
        self.student1 = student1
        self.student2 = student2
        self.router = router
        self.peer = peer

    @staticmethod
    def _run(student: nn.Module, part: dict[str, torch.Tensor], hidden: bool):
        out = student(input_ids=part["input_ids"], attention_mask=part["attention_mask"],
                      output_hidden_states=hidden, use_cache=False)
        return out, per_example_nll(out.logits, part["labels"])

    def _route(self, batch: dict[str, Any], nll1: torch.Tensor):
        """(mask [B, 2], route [B], probs or None, decision or None)."""
        if self.router is not None:
            decision = self.router(batch["route_emb"])
            return decision.mask.to(nll1.dtype), decision.route, decision.probs, decision
        bsz = nll1.shape[0]
        mask = torch.ones(bsz, 2, dtype=nll1.dtype, device=nll1.device)
        if self.student2 is None:
            mask[:, 1] = 0
        code = 3 if self.student2 is not None else 1
        return mask, torch.full((bsz,), code, dtype=torch.long, device=nll1.device), None, None

    def forward(self, batch: dict[str, Any]) -> MixtureOutput:
        hidden = self.peer is not None and self.peer.needs_hidden_states
        out1, nll1 = self._run(self.student1, batch["s1"], hidden)
        out2, nll2 = (None, torch.zeros_like(nll1)) if self.student2 is None else \
            self._run(self.student2, batch["s2"], hidden)
        mask, route, probs, decision = self._route(batch, nll1)
        # The mask selects which student learns each path; it is a constant here. The router learns
        # from its own expected-cost loss over both students' per-path losses (distill.router.router).
        loss1 = masked_mean(nll1, mask[:, 0].detach())
        loss2 = masked_mean(nll2, mask[:, 1].detach())
        loss = loss1 + loss2
        logs = {"loss_s1": float(loss1.detach()), "loss_s2": float(loss2.detach())}
        if decision is not None:
            aux = self.router.aux_loss(decision, nll1.detach(), None if out2 is None else nll2.detach())
            loss = loss + aux
            logs["router_aux"] = float(aux.detach())
        if self.peer is not None and out2 is not None:
            peer = self.peer(out1, out2, batch, mask)
            loss = loss + peer.loss
            logs["peer"] = float(peer.loss.detach())
            logs.update({f"peer_{k}": float(v) for k, v in peer.logs.items()})
        return MixtureOutput(loss=loss, nll1=nll1, nll2=nll2, mask=mask, route=route, route_probs=probs, logs=logs)
