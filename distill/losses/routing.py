"""Pure routing losses: the CoT router's expected cost and balance term.

Why these live here and not in the router: they are functions of tensors only (per-path
student losses, option probabilities), so they can be tested by hand and reused by the engine
and its tests without a router module. See :mod:`distill.router.router` for why the router is
trained on the expected cost of its probabilities plus a balance term.

Options are always ordered ``(s1 only, s2 only, both)``.
"""

from __future__ import annotations

import math

import torch


def balance_loss(probs: torch.Tensor) -> torch.Tensor:
    """``log K - H(mean_b probs[b])``, the balance term over the mean assignment.

    Args:
        probs: [B, K] noise-free option probabilities (rows sum to 1).

    Returns:
        Scalar: 0 when the mean assignment is uniform, ``log K`` when every path goes to one
        option. Entropy of the *mean* (not the mean entropy): individual paths may be routed
        decisively as long as the options are used evenly overall.
    """
    mean = probs.mean(dim=0).clamp_min(1e-9)
    return math.log(probs.shape[-1]) + (mean * mean.log()).sum()


def standardise(x: torch.Tensor, center: torch.Tensor | float | None = None,
                scale: torch.Tensor | float | None = None, eps: float = 1e-6) -> torch.Tensor:
    """``(x - center) / (scale + eps)``, detached, in float32.

    Args:
        x: [B] per-path losses of one student.
        center, scale: scalars (the router's running mean and std); when either is missing the
            batch's own mean and population std are used (all zeros for a batch of one, which
            has no spread to standardise by).
        eps: keeps a zero ``scale`` finite.

    Returns:
        [B] float32 with no graph: the router's cost must not train the students.
    """
    x = x.detach().float()
    if center is None or scale is None:
        if x.numel() < 2:
            return torch.zeros_like(x)
        center, scale = x.mean(), x.std(unbiased=False)
    return (x - center) / (scale + eps)


def routing_cost(nll1: torch.Tensor, nll2: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
    """Cost [B, 3] of sending each path to (s1 only, s2 only, both), from per-path student losses.

    Args:
        nll1, nll2: [B] per-path losses of student 1 and 2 (e.g. :func:`per_example_nll`).
        stats: optional [2, 2] ``[[mean1, std1], [mean2, std2]]`` (the router's running
            statistics); without it the batch's own mean and std are used.

    Returns:
        [B, 3] float32 ``(c1, c2, c1 + c2)`` with ``c_k = standardise(nll_k)``. Standardising per
        student makes the comparison scale-free across tokenizers; "both" costs the sum, so it is
        the cheapest option exactly when the path is below average for both. Detached: the
        router's cost must not train the students.
    """
    if stats is None:
        c1, c2 = standardise(nll1), standardise(nll2)
    else:
        c1 = standardise(nll1, stats[0, 0], stats[0, 1])
        c2 = standardise(nll2, stats[1, 0], stats[1, 1])
    return torch.stack([c1, c2, c1 + c2], dim=-1)


def expected_cost(probs: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``sum_o probs[b, o] * cost[b, o]``.

    Args:
        probs: [B, 3] noise-free option probabilities (carries the router's graph).
        cost: [B, 3] per-option cost (:func:`routing_cost`), cast to ``probs.dtype``.

    Returns:
        Scalar, differentiable in ``probs``: the full-information, low-variance gradient of
        the router (every option's cost is known because both students see every path).
    """
    return (probs * cost.to(probs.dtype)).sum(dim=-1).mean()
