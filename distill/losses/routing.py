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


def coverage_loss(probs: torch.Tensor, floor: float) -> torch.Tensor:
    """``sum_k relu(floor - share_k) / floor``: a floor on each student's share of the paths.

    Args:
        probs: [B, 3] noise-free option probabilities over ``(s1 only, s2 only, both)``.
        floor: the share of paths (in (0, 1]) below which a student counts as starved.

    Returns:
        Scalar in [0, 2]: 0 while each student trains on at least ``floor`` of the paths
        (``share_1 = mean(p_s1 + p_both)``, ``share_2 = mean(p_s2 + p_both)``), rising linearly to 1
        per student as its share falls to 0. Unlike :func:`balance_loss` it does not push paths
        away from "both": sending every path to both students costs 0. It only prevents collapse.
    """
    share1 = (probs[:, 0] + probs[:, 2]).mean()
    share2 = (probs[:, 1] + probs[:, 2]).mean()
    return (torch.relu(floor - share1) + torch.relu(floor - share2)) / floor


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


def routing_cost(nll1: torch.Tensor, nll2: torch.Tensor, stats: torch.Tensor | None = None,
                 margin: float = 0.0) -> torch.Tensor:
    """Cost [B, 3] of sending each path to (s1 only, s2 only, both), from per-path student losses.

    Args:
        nll1, nll2: [B] per-path losses of student 1 and 2 (e.g. :func:`per_example_nll`).
        stats: optional [2, 2] ``[[mean1, std1], [mean2, std2]]`` (the router's running
            statistics); without it the batch's own mean and std are used.
        margin: how many standard deviations above a student's mean loss a path may be and still
            count as learnable by it. 0 (mean-centred): "both" wins only below average for both,
            so half of each student's paths are pushed to the other one. ``m > 0``: a path goes to
            both students unless it is an outlier (``z > m``) for one of them.

    Returns:
        [B, 3] float32 ``(c1, c2, c1 + c2)`` with ``c_k = standardise(nll_k) - margin``.
        Standardising per student makes the comparison scale-free across tokenizers; "both"
        costs the sum, so it is the cheapest option exactly when ``c_k < 0`` for both. Detached:
        the router's cost must not train the students.
    """
    if stats is None:
        c1, c2 = standardise(nll1), standardise(nll2)
    else:
        c1 = standardise(nll1, stats[0, 0], stats[0, 1])
        c2 = standardise(nll2, stats[1, 0], stats[1, 1])
    c1, c2 = c1 - margin, c2 - margin
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
