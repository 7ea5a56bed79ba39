"""Pure peer-teaching losses (no modules, no state), in the style of torchtune's ``kd_losses``.

All take already-gathered aligned rows (``[N, ...]``, one row per aligned token, or ``[B]`` per
example for the sequence-level mixture) so they are independent of batching, padding and
tokenizers. ``w`` is always the ensemble-weight network's softmax output, ``[N, 2]`` (or
``[B, 2]``), column ``k`` the weight of student ``k + 1``.

The per-row student terms (:func:`ensemble_kl`, :func:`uld_distance`) take ``reduction``:
``"mean"`` (default) over rows, or ``"none"`` for the ``[N]`` per-row values, so a caller can
average each student's term over a different subset of rows (peer scope ``all``: a student is
taught only on the paths routed to the *other* student).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "none")


def _reduce(per_row: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_row.mean()
    if reduction == "none":
        return per_row
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def ensemble_kl(logits1: torch.Tensor, logits2: torch.Tensor, w: torch.Tensor,
                temperature: float = 1.0, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level KL of each student toward the weighted ensemble of both (same vocabulary).

    Args:
        logits1, logits2: [N, V] the two students' logits at aligned positions.
        w: [N, 2] ensemble weights per row (rows sum to 1).
        temperature: T > 0, applied to both students' logits.
        reduction: ``"mean"`` over rows, or ``"none"``: ``[N]`` per-row values (not averaged).

    Returns:
        ``(kl1, kl2)``, two scalars: ``mean_n KL(target_n || softmax(z_k,n / T)) * T**2`` (each
        ``[N]`` without the mean under ``reduction="none"``; the mean of those is the default). The
        target ``w1 softmax(z1/T) + w2 softmax(z2/T)`` is detached, so each student is pulled
        toward it and nothing flows back through the target (no student is pulled toward itself
        through it). Scaled by ``T**2`` (Hinton) so the gradient size does not shrink with the
        temperature.
    """
    t = float(temperature)
    lp1 = F.log_softmax(logits1.float() / t, dim=-1)
    lp2 = F.log_softmax(logits2.float() / t, dim=-1)
    with torch.no_grad():
        target = w[:, :1].float() * lp1.exp() + w[:, 1:].float() * lp2.exp()
        log_target = target.clamp_min(1e-12).log()
    kl1 = _reduce((target * (log_target - lp1)).sum(-1), reduction) * t * t
    kl2 = _reduce((target * (log_target - lp2)).sum(-1), reduction) * t * t
    return kl1, kl2


def ensemble_nll(logits1: torch.Tensor, logits2: torch.Tensor, w: torch.Tensor,
                 targets: torch.Tensor) -> torch.Tensor:
    """NLL of the true next tokens under the mixture ``w1 p1 + w2 p2`` (same vocabulary).

    Args:
        logits1, logits2: [N, V] the two students' logits at aligned positions.
        w: [N, 2] ensemble weights per row.
        targets: [N] long, the true next token of each row.

    Returns:
        Scalar, ``-mean_n log(w1 p1(y_n) + w2 p2(y_n))``. The students' distributions are
        detached: this is the training signal of the ensemble-weight network only (it learns
        to trust the student that predicts the data better), not a student loss.
    """
    with torch.no_grad():
        lp1 = F.log_softmax(logits1.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
        lp2 = F.log_softmax(logits2.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    logw = torch.log(w.float().clamp_min(1e-12))
    return -torch.logsumexp(torch.stack([logw[:, 0] + lp1, logw[:, 1] + lp2], dim=-1), dim=-1).mean()


def sequence_mixture_nll(seq_nll1: torch.Tensor, seq_nll2: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Sequence-level mixture NLL ``-log(w1 exp(-S1) + w2 exp(-S2))``, mean over examples.

    Args:
        seq_nll1, seq_nll2: [B] ``S_k``, student k's *summed* NLL of each response (see
            :func:`distill.losses.sequence_nll`): the log-probability of the same string, so it
            is comparable across tokenizers. Detached here.
        w: [B, 2] ensemble weights per example.

    Returns:
        Scalar. It trains the ensemble weights toward the student that models the sample better
        (its posterior responsibility) when token distributions cannot be mixed (different
        vocabularies). Computed after shifting by ``min(S1, S2)`` for stability: ``exp(-S)`` of a
        whole response underflows, and the shift is a per-example constant, so the gradient in
        ``w`` is unchanged (the *value* is the shifted one).
    """
    s = torch.stack([seq_nll1, seq_nll2], dim=-1).detach().float()
    s = s - s.min(dim=-1, keepdim=True).values
    logw = torch.log(w.float().clamp_min(1e-12))
    return -torch.logsumexp(logw - s, dim=-1).mean()


def contrastive_hidden(z: torch.Tensor, target: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """InfoNCE of projected student states toward detached targets.

    Args:
        z: [N, k] a student's projected hidden states at aligned tokens.
        target: [N, k] the detached weighted mix of both students' (normalised) projections.
        tau: softmax temperature of the cosine similarities.

    Returns:
        Scalar, ``mean_i CE(softmax_j(cos(z_i, t_j) / tau), i)``: row ``i`` of ``z`` must be
        closer (cosine) to target ``i`` than to the other aligned tokens' targets. Plain
        cosine/MSE toward a target built from the same learned projections collapses (every
        projection constant); the contrastive form cannot, because a constant scores chance,
        ``log N``.
    """
    z = F.normalize(z.float(), dim=-1)
    t = F.normalize(target.detach().float(), dim=-1)
    logits = z @ t.T / tau
    return F.cross_entropy(logits, torch.arange(z.shape[0], device=z.device))


def uld_distance(logits1: torch.Tensor, logits2: torch.Tensor, w: torch.Tensor,
                 temperature: float = 1.0, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """Universal Logit Distillation (Boizard et al., 2024) toward the weighted ensemble.

    Args:
        logits1: [N, V1], logits2: [N, V2] the students' logits at aligned positions; the
            vocabularies may differ in size and order.
        w: [N, 2] ensemble weights per row.
        temperature: T > 0, applied to both.
        reduction: ``"mean"`` over rows, or ``"none"``: ``[N]`` per-row distances.

    Returns:
        ``(d1, d2)``, two scalars: ``mean_n ||sort(p_k,n) - target_n||_1`` (``[N]`` each under
        ``reduction="none"``). Vocabularies differ,
        so distributions are compared as *sorted* (descending) probability vectors, zero-padded
        to the larger vocabulary: the L1 distance between them is the 1-D Wasserstein distance
        that ULD uses. The target is the weighted mix of both sorted vectors, detached.
    """
    t = float(temperature)
    p1 = F.softmax(logits1.float() / t, dim=-1).sort(dim=-1, descending=True).values
    p2 = F.softmax(logits2.float() / t, dim=-1).sort(dim=-1, descending=True).values
    v = max(p1.shape[-1], p2.shape[-1])
    p1 = F.pad(p1, (0, v - p1.shape[-1]))
    p2 = F.pad(p2, (0, v - p2.shape[-1]))
    with torch.no_grad():
        target = w[:, :1].float() * p1 + w[:, 1:].float() * p2
    return _reduce((p1 - target).abs().sum(-1), reduction), _reduce((p2 - target).abs().sum(-1), reduction)
