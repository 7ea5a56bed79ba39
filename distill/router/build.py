"""``build_router(cfg, embed_dim)``: the engine's single entry point into routing.

``cfg`` is the engine's ``TrainConfig`` (or anything with the same attributes): ``routing``
(``learned`` | ``all`` | ``random``), ``gumbel_tau``, ``gumbel_tau_min``, ``balance_weight``, and
optionally ``router_hidden`` and ``seed``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from distill.errors import ConfigError
from distill.router.router import CoTRouter, RandomRouter

ROUTING_MODES = ("learned", "all", "random")


def build_router(cfg: Any, embed_dim: int) -> nn.Module | None:
    """``None`` for ``routing="all"`` (every path trains both students), a :class:`RandomRouter` for
    ``"random"`` (fixed random assignment, the no-routing ablation with the same data split sizes), a
    :class:`CoTRouter` for ``"learned"``."""
    mode = getattr(cfg, "routing", "learned")
    if mode == "all":
        return None
    if mode == "random":
        return RandomRouter(seed=int(getattr(cfg, "seed", 0) or 0))
    if mode != "learned":
        raise ConfigError(f"routing must be one of {', '.join(ROUTING_MODES)}, got {mode!r}")
    if embed_dim <= 0:
        raise ConfigError(f"learned routing needs a positive encoder embedding size, got {embed_dim}")
    tau = float(getattr(cfg, "gumbel_tau", 1.0))
    tau_min = float(getattr(cfg, "gumbel_tau_min", min(tau, 0.1)))
    if not (0 < tau_min <= tau):
        raise ConfigError(f"need 0 < gumbel_tau_min <= gumbel_tau, got {tau_min} and {tau}")
    balance = float(getattr(cfg, "balance_weight", 0.1))
    if balance < 0:
        raise ConfigError(f"balance_weight must be >= 0, got {balance}")
    return CoTRouter(embed_dim, hidden=int(getattr(cfg, "router_hidden", 128) or 128), tau=tau,
                     tau_min=tau_min, balance_weight=balance)
