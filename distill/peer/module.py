"""Peer teaching: each student learns from a learned, per-sample weighted ensemble of both.

``PeerTeacher(out1, out2, batch, mask) -> PeerOutput(loss, logs)`` is called by the engine's ``MixtureModel`` with the
two students' Hugging Face outputs (``output_hidden_states=True``), the batch and the router mask.

* **Who teaches whom** (``scope``). ``"co_routed"`` (default): only co-routed paths
  (``mask[:, 0] == mask[:, 1] == 1``) contribute, and both students get the peer term on them; a
  path routed to one student is not shown to the other, not even as a distillation target.
  ``"all"``: every path routed to at least one student is used. On a co-routed path both students
  get the peer term; on a path routed only to student A, only the *other* student B gets it (B
  learns that path from the detached ensemble / A's distribution on the aligned tokens, never from
  the teacher tokens' NLL), and A gets none from it (A learns it from the teacher tokens, in the
  engine). So student 1 is taught on the paths routed to student 2 and vice versa. Each student's
  term is averaged over its own aligned tokens only (in ``hidden`` mode the InfoNCE negatives are
  drawn from those tokens too), so a path a student is not taught on has exactly no influence on
  that student's gradient. The mask is used as a detached selector, so the router is not rewarded
  for avoiding the peer loss.
* **Ensemble weights.** A small network over the students' pooled (mean over completion tokens,
  detached) last hidden states gives per-sample weights ``w = softmax(.)`` [B, 2]. It is *trained*,
  on every path used (both scopes):
  in ``kl`` mode by the NLL of the true tokens under ``w1 p1 + w2 p2`` (students detached); in the
  cross-tokenizer modes by the sequence-level mixture NLL ``-log(w1 e^{-S1} + w2 e^{-S2})``, where
  ``S_k`` is student k's summed NLL of the same response string. The students' target is detached,
  and so are the students inside the weight network's loss: the teacher tokens (``S_k``, the true
  next tokens) reach only the weight network, never a student, so under scope ``all`` a student
  learns a path it was not routed purely from the ensemble.
* **Modes** (``peer_loss``; ``auto`` picks ``kl`` when the vocabularies are identical, else ``hidden``):
  ``kl``: token-level KL toward the ensemble distribution at temperature T, on tokens whose
  character spans are identical; ``hidden``: learned projections of both students' last hidden
  states into a shared ``dim``-dimensional space, aligned by character offsets (tokens ending at the
  same character), each student's projection pulled (InfoNCE) toward the detached weighted mix;
  ``uld``: Universal Logit Distillation between sorted distributions at positions predicting the
  continuation from the same character.

The returned loss is ``kl_weight * (student terms) + weight-network loss``; the weight network's
term touches only its own parameters (everything else in it is detached), so it is not scaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.losses import (completion_mask, contrastive_hidden, ensemble_kl, ensemble_nll,
                            sequence_mixture_nll, sequence_nll, uld_distance)
from distill.peer.align import aligned_positions

PEER_MODES = ("kl", "hidden", "uld")
#: which paths carry a peer signal (see the module docstring); mirrors ``distill.train.config.PEER_SCOPES``
PEER_SCOPES = ("co_routed", "all")
#: which character-offset agreement each mode aligns on (see distill.peer.align)
ALIGN_KEY = {"kl": "span", "uld": "start", "hidden": "end"}


def pooled_states(hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [B, L, H] over completion positions (all positions if none), detached."""
    m = completion_mask(labels).to(hidden.dtype)
    m = torch.where(m.sum(1, keepdim=True) > 0, m, torch.ones_like(m))
    return ((hidden * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)).detach().float()


@dataclass
class PeerOutput:
    """What :meth:`PeerTeacher.forward` returns.

    ``loss``: scalar, ``kl_weight * (student terms) + weight-network loss`` (0 with a graph over
    every peer parameter when no path is used or aligned); ``logs``: ``{name: float}``
    (``co_routed``, ``pairs``, ``rows_s1`` / ``rows_s2``: paths on which student 1 / 2 received the
    peer term (at least one aligned token), and when pairs exist ``w1``, ``student_loss``,
    ``weight_loss``), which the engine logs as ``peer_<name>``.
    """

    loss: Tensor
    logs: dict[str, float]


class PeerTeacher(nn.Module):
    """See the module docstring. ``h1``/``h2``: hidden sizes of the students; ``dim``: shared space.

    ``forward`` returns a :class:`PeerOutput` (the engine adds the loss and logs ``peer_*``
    metrics: co-routed paths, aligned pairs, mean ensemble weight of student 1).
    """

    #: the engine runs the students with ``output_hidden_states=True`` when this is set
    needs_hidden_states = True

    def __init__(self, mode: str, h1: int, h2: int, *, kl_weight: float = 1.0, temperature: float = 1.0,
                 dim: int = 64, weight_hidden: int = 64, contrastive_tau: float = 0.1,
                 max_rows: int = 4096, scope: str = "co_routed"):
        super().__init__()
        if mode not in PEER_MODES:
            raise ValueError(f"peer mode must be one of {PEER_MODES}, got {mode!r}")
        if scope not in PEER_SCOPES:
            raise ValueError(f"peer scope must be one of {PEER_SCOPES}, got {scope!r}")
        self.mode = mode
        self.scope = scope
        self.kl_weight = float(kl_weight)
        self.temperature = float(temperature)
        self.contrastive_tau = float(contrastive_tau)
        self.max_rows = int(max_rows)
        self.weight_net = nn.Sequential(nn.Linear(h1 + h2, weight_hidden), nn.Tanh(), nn.Linear(weight_hidden, 2))
        nn.init.normal_(self.weight_net[-1].weight, std=0.01)
        nn.init.zeros_(self.weight_net[-1].bias)
        if mode == "hidden":
            self.proj1 = nn.Linear(h1, dim)
            self.proj2 = nn.Linear(h2, dim)
        self.last_stats: dict[str, Any] = {}

    def ensemble_weights(self, out1, out2, batch) -> torch.Tensor:
        """Per-sample ensemble weights [B, 2] from the students' pooled last hidden states."""
        p1 = pooled_states(out1.hidden_states[-1], batch["s1"]["labels"])
        p2 = pooled_states(out2.hidden_states[-1], batch["s2"]["labels"])
        x = torch.cat([p1, p2], dim=-1).to(self.weight_net[0].weight.dtype)
        return self.weight_net(x).float().softmax(dim=-1)

    def _zero(self, ref: torch.Tensor) -> torch.Tensor:
        # touches every peer parameter so distributed data parallel always sees them used
        return sum((p.sum() * 0.0 for p in self.parameters()), ref.new_zeros((), dtype=torch.float32))

    def taught_rows(self, mask: torch.Tensor | None, batch_size: int,
                    device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """``(used, teach1, teach2)``, [B] bools: paths the module looks at, and those on which
        student 1 / student 2 receives the peer term (see ``scope`` in the module docstring)."""
        if mask is None:
            every = torch.ones(batch_size, dtype=torch.bool, device=device)
            return every, every, every
        r1, r2 = mask.detach()[:, 0] > 0.5, mask.detach()[:, 1] > 0.5
        if self.scope == "co_routed":
            co = r1 & r2
            return co, co, co
        return r1 | r2, r2, r1  # a student is taught on the paths routed to the other one

    @staticmethod
    def _mean_over(per_row: Tensor, sel: Tensor) -> Tensor:
        """Mean of ``per_row`` [N] over ``sel`` [N] bool; an exact 0 (still in the graph) if empty."""
        if bool(sel.all()):
            return per_row.mean()
        if bool(sel.any()):
            return per_row[sel].mean()
        return per_row.sum() * 0.0

    def _contrastive_over(self, z: Tensor, target: Tensor, sel: Tensor) -> Tensor:
        """InfoNCE on the selected rows only: the negatives come from the same rows, so rows a
        student is not taught on do not shape its gradient even as negatives."""
        if bool(sel.all()):
            return contrastive_hidden(z, target, self.contrastive_tau)
        if bool(sel.any()):
            return contrastive_hidden(z[sel], target[sel], self.contrastive_tau)
        return z.sum() * 0.0

    def forward(self, out1, out2, batch: dict, mask: torch.Tensor | None = None) -> PeerOutput:
        s1, s2 = batch["s1"], batch["s2"]
        logits1 = out1.logits
        dev = logits1.device
        zero = self._zero(logits1)
        B = s1["labels"].shape[0]
        used, teach1, teach2 = self.taught_rows(mask, B, dev)
        co = teach1 & teach2
        self.last_stats = {"co_routed": float(co.sum()), "pairs": 0.0, "rows_s1": 0.0, "rows_s2": 0.0}
        if not used.any():
            return PeerOutput(loss=zero, logs=dict(self.last_stats))
        w = self.ensemble_weights(out1, out2, batch)  # [B, 2]
        idx = torch.nonzero(used).flatten().tolist()
        pos = aligned_positions(s1["labels"][idx].cpu(), [s1["offsets"][i] for i in idx],
                                s2["labels"][idx].cpu(), [s2["offsets"][i] for i in idx], ALIGN_KEY[self.mode])
        rows_b, rows_1, rows_2 = [], [], []
        for b, (p1, p2) in zip(idx, pos):
            if self.mode in ("kl", "uld"):  # logits *before* the aligned token predict it
                keep = [(a, c) for a, c in zip(p1, p2) if a >= 1 and c >= 1]
                if self.mode == "kl":
                    ids1, ids2 = s1["input_ids"][b], s2["input_ids"][b]
                    keep = [(a, c) for a, c in keep if int(ids1[a]) == int(ids2[c])]
                p1, p2 = [a - 1 for a, _ in keep], [c - 1 for _, c in keep]
            rows_b += [b] * len(p1)
            rows_1 += p1
            rows_2 += p2
        if not rows_b:
            return PeerOutput(loss=zero, logs=dict(self.last_stats))
        if len(rows_b) > self.max_rows:  # bound the InfoNCE / vocab-size memory on long batches
            sel = torch.randperm(len(rows_b))[: self.max_rows].sort().values.tolist()
            rows_b = [rows_b[i] for i in sel]
            rows_1 = [rows_1[i] for i in sel]
            rows_2 = [rows_2[i] for i in sel]
        tb = torch.tensor(rows_b, device=dev)
        t1 = torch.tensor(rows_1, device=dev)
        t2 = torch.tensor(rows_2, device=dev)
        sel1, sel2 = teach1[tb], teach2[tb]  # [N]: aligned tokens each student is taught on
        w_rows = w[tb]
        self.last_stats.update(pairs=float(len(rows_b)), w1=float(w[used][:, 0].mean().detach()),
                               rows_s1=float(tb[sel1].unique().numel()),
                               rows_s2=float(tb[sel2].unique().numel()))

        if self.mode == "kl":
            l1, l2 = logits1[tb, t1], out2.logits[tb, t2]
            kl1, kl2 = ensemble_kl(l1, l2, w_rows, self.temperature, reduction="none")
            student = self._mean_over(kl1, sel1) + self._mean_over(kl2, sel2)
            w_loss = ensemble_nll(l1, l2, w_rows, s1["input_ids"][tb, t1 + 1])
        else:
            used_idx = torch.tensor(idx, device=dev)
            with torch.no_grad():  # only the weight network learns from S_k
                seq1 = sequence_nll(logits1[used_idx], s1["labels"][used_idx])
                seq2 = sequence_nll(out2.logits[used_idx], s2["labels"][used_idx])
            w_loss = sequence_mixture_nll(seq1, seq2, w[used_idx])
            if self.mode == "uld":
                d1, d2 = uld_distance(logits1[tb, t1], out2.logits[tb, t2], w_rows, self.temperature,
                                      reduction="none")
                student = self._mean_over(d1, sel1) + self._mean_over(d2, sel2)
            else:
                h1 = out1.hidden_states[-1][tb, t1]
                h2 = out2.hidden_states[-1][tb, t2]
                z1 = self.proj1(h1.to(self.proj1.weight.dtype))
                z2 = self.proj2(h2.to(self.proj2.weight.dtype))
                with torch.no_grad():
                    target = w_rows[:, :1] * F.normalize(z1.float(), dim=-1) + \
                        w_rows[:, 1:] * F.normalize(z2.float(), dim=-1)
                student = self._contrastive_over(z1, target, sel1) + self._contrastive_over(z2, target, sel2)
        self.last_stats.update(student_loss=float(student.detach()), weight_loss=float(w_loss.detach()))
        return PeerOutput(loss=zero + self.kl_weight * student + w_loss, logs=dict(self.last_stats))
