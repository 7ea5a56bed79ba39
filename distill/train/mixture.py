"""``MixtureModel``: the single ``nn.Module`` that holds everything that trains.

Why one module: Accelerate / DDP / DeepSpeed prepare exactly one model, so both
students, the router and the peer-teaching module live under one root and share one
optimizer (with per-group learning rates), one backward and one checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from distill.losses import masked_mean, per_example_nll


class MixtureModel(nn.Module):
    """Two students plus optional ``router`` and ``peer`` submodules.

    ``forward(batch)`` returns ``dict(loss, nll1[B], nll2[B], mask[B,2], route[B], route_probs, logs)``.
    Student loss = ``masked_mean(nll1, mask[:,0]) + masked_mean(nll2, mask[:,1])`` with the mask as a
    constant; the router's ``aux_loss(decision, nll1, nll2)`` (expected routing cost + balance) and the
    peer loss are added when those modules are set (each already weighted).
    ``student2`` may be ``None`` (SFT baseline): then ``nll2`` is zeros and column 1 of the mask is 0.
    """

    def __init__(self, student1: nn.Module, student2: nn.Module | None, router: nn.Module | None = None,
                 peer: nn.Module | None = None):
        super().__init__()
        self.student1 = student1
        self.student2 = student2
        self.router = router
        self.peer = peer

    @staticmethod
    def _run(student: nn.Module, part: dict[str, torch.Tensor], hidden: bool = False):
        out = student(input_ids=part["input_ids"], attention_mask=part["attention_mask"],
                      output_hidden_states=hidden, use_cache=False)
        return out, per_example_nll(out.logits, part["labels"])

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        hidden = bool(getattr(self.peer, "needs_hidden_states", False))
        out1, nll1 = self._run(self.student1, batch["s1"], hidden)
        bsz = nll1.shape[0]
        if self.student2 is not None:
            out2, nll2 = self._run(self.student2, batch["s2"], hidden)
        else:
            out2, nll2 = None, torch.zeros_like(nll1)
        logs: dict[str, float] = {}
        decision = None
        if self.router is not None:
            decision = self.router(batch["route_emb"])
            mask = decision.mask.to(nll1.dtype)
            route = decision.route
            route_probs = decision.probs
        else:
            mask = torch.ones(bsz, 2, dtype=nll1.dtype, device=nll1.device)
            if self.student2 is None:
                mask[:, 1] = 0
            route = torch.full((bsz,), 3 if self.student2 is not None else 1, dtype=torch.long, device=nll1.device)
            route_probs = None
        # The mask selects which student learns each path; it is a constant here. The router
        # learns from its own expected-cost loss over both students' per-path losses (see
        # distill.router.router), not from the straight-through gradient of these means.
        loss1 = masked_mean(nll1, mask[:, 0].detach())
        loss2 = masked_mean(nll2, mask[:, 1].detach())
        loss = loss1 + loss2
        logs["loss_s1"] = float(loss1.detach())
        logs["loss_s2"] = float(loss2.detach())
        if decision is not None and hasattr(self.router, "aux_loss"):
            aux = self.router.aux_loss(decision, nll1.detach(), nll2.detach() if self.student2 is not None else None)
            loss = loss + aux
            logs["router_aux"] = float(aux.detach())
        if self.peer is not None and out2 is not None:
            peer = self.peer(out1, out2, batch, mask)
            if isinstance(peer, dict):
                logs.update({f"peer_{k}": float(v) for k, v in peer.get("logs", {}).items()})
                peer = peer["loss"]
            loss = loss + peer
            logs["peer"] = float(peer.detach())
        return {"loss": loss, "nll1": nll1, "nll2": nll2, "mask": mask, "route": route,
                "route_probs": route_probs, "logs": logs}
