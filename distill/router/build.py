"""``build_router(cfg, embed_dim, seed)``: the engine's single entry point into routing.

``cfg`` is the run's validated :class:`~distill.router.config.RouterConfig` (ranges were checked when
it was built); ``routing`` picks ``learned`` (:class:`CoTRouter`), ``random`` (:class:`RandomRouter`),
``styles`` (:class:`StyleRouter`, a fixed assignment by reasoning style) or ``all`` (no router: every path trains both students).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from distill.errors import ConfigError
from distill.router.config import parse_route_styles
from distill.router.router import CoTRouter, RandomRouter, StyleRouter

if TYPE_CHECKING:
    from distill.router.config import RouterConfig


def build_router(cfg: "RouterConfig", embed_dim: int, seed: int = 0) -> CoTRouter | RandomRouter | StyleRouter | None:
    """``None`` for ``routing="all"``, a :class:`RandomRouter` (seeded) for ``"random"``, a
    :class:`StyleRouter` (``--route_styles``) for ``"styles"``, a
    :class:`CoTRouter` over ``embed_dim``-wide path embeddings for ``"learned"``."""
    if cfg.routing == "all":
        return None
    if cfg.routing == "styles":
        return StyleRouter(parse_route_styles(cfg.route_styles))
    if cfg.routing == "random":
        return RandomRouter(seed=seed)
    if embed_dim <= 0:
        raise ConfigError(f"learned routing needs a positive encoder embedding size, got {embed_dim}")
    return CoTRouter(embed_dim, hidden=cfg.hidden, tau=cfg.gumbel_tau, tau_min=cfg.gumbel_tau_min,
                     balance_weight=cfg.balance_weight, cost_every=cfg.cost_every,
                     balance=cfg.balance, margin=cfg.margin, min_share=cfg.min_share)
