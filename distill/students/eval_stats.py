"""Significance of a table row against the base row: a two-proportion z-test and a paired bootstrap interval.

Both compare the same test items under two conditions (base vs. distilled, ...). The z-test is the
textbook unpaired one (pooled proportion), conservative for paired data; the bootstrap resamples
*items* (pairs), so its 95% interval of the difference respects the pairing. Pure (numpy only).
"""

from __future__ import annotations

import math
from typing import Sequence


def two_proportion_z(k0: int, n0: int, k1: int, n1: int) -> tuple[float, float]:
    """``(z, p)`` for H0: p1 == p0, with ``k`` successes of ``n`` each; two-sided p from the normal law.

    Pooled standard error ``sqrt(p(1-p)(1/n0 + 1/n1))``; when it is 0 (both 0% or both 100%) the
    difference is 0 and ``(0.0, 1.0)`` is returned.
    """
    if n0 <= 0 or n1 <= 0:
        raise ValueError(f"two_proportion_z: empty sample (n0={n0}, n1={n1})")
    if not (0 <= k0 <= n0 and 0 <= k1 <= n1):
        raise ValueError(f"two_proportion_z: counts out of range ({k0}/{n0}, {k1}/{n1})")
    pooled = (k0 + k1) / (n0 + n1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k0 / n0) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def paired_bootstrap_ci(before: Sequence[bool], after: Sequence[bool], *, n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(after) - mean(before)`` over paired items (resampled
    together, ``n_boot`` times, fixed ``seed``)."""
    import numpy as np

    if len(before) != len(after):
        raise ValueError(f"paired_bootstrap_ci: {len(before)} vs {len(after)} items (not paired)")
    if not before:
        raise ValueError("paired_bootstrap_ci: no items")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def compare(before: Sequence[bool], after: Sequence[bool], **kw) -> dict[str, float | list[float]]:
    """``{diff, ci95, z, p}`` of the share of True in ``after`` against ``before`` (paired items)."""
    n = len(before)
    z, p = two_proportion_z(sum(map(bool, before)), n, sum(map(bool, after)), len(after))
    lo, hi = paired_bootstrap_ci(before, after, **kw)
    return {"diff": sum(map(bool, after)) / len(after) - sum(map(bool, before)) / n, "ci95": [lo, hi], "z": z, "p": p}
