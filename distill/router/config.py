"""``RouterConfig``: the router's section of a run's configuration (``distill train`` flags)."""

from __future__ import annotations

from dataclasses import dataclass

from distill.options import at_least as _at_least
from distill.options import need as _need
from distill.options import one_of as _one_of
from distill.options import option as _f

ROUTING_MODES = ("learned", "all", "random", "styles")
#: the router's balance terms (:meth:`distill.router.router.CoTRouter.aux_loss`)
BALANCE_MODES = ("entropy", "coverage")


@dataclass
class RouterConfig:
    """The CoT router: which student learns each path."""

    routing: str = _f("learned", "learned: CoT router over path embeddings; all: every path trains both "
                             "students (no routing); random: fixed random assignment (ablation); styles: a fixed "
                             "assignment by reasoning style (--route_styles), e.g. a style that overflows a "
                             "student's window")
    encoder: str = _f("minilm", "router path encoder: 'minilm' or a local encoder folder")
    gumbel_tau: float = _f(1.0, "initial Gumbel-softmax temperature of the router")
    gumbel_tau_min: float = _f(0.1, "final Gumbel-softmax temperature (annealed over training)")
    balance_weight: float = _f(1.0, "weight of the router's load-balance loss (0.1 collapsed routing onto one "
                                    "student within 2 epochs on the built-in demo task; 1.0 did not)")
    balance: str = _f("entropy", "the router's balance term: entropy (of the mean assignment over s1 / s2 / both: "
                                 "pulls a third of the paths to each option) or coverage (only a floor of "
                                 "--router_min_share on each student's share; use with --router_margin > 0)",
                      flag="router_balance")
    margin: float = _f(0.0, "routing cost z - margin (z: a path's standardised loss on a student): 0 sends a "
                            "path to both students only when it is below average for both; m > 0 sends it to "
                            "both unless it is more than m standard deviations above a student's mean",
                       flag="router_margin")
    min_share: float = _f(0.25, "coverage balance: the share of paths below which a student counts as starved",
                          flag="router_min_share")
    route_styles: str = _f("", "routing styles: STYLE=1|2|both pairs, comma-separated (e.g. 'tot=2'); a style "
                               "not named trains both students")
    hidden: int = _f(128, "width of the router's MLP", flag="router_hidden")
    cost_every: int = _f(1, "measure both students' loss on every path (the router's full-information cost) "
                            "every N-th micro-batch only; on the others a student runs only the paths routed "
                            "to it and the router learns from its bank of recent costs. Epoch CPU time full / "
                            "separate on the tiny pair (median of 3): 1.13 at 1, 0.77 at 4, 0.80 at 8; but at 8 the routing "
                            "probe (data seed 0) sent a share of 0.77 of tot paths to student 2 (< its 0.8), so 1 stays "
                            "the default", flag="router_cost_every")

    def __post_init__(self) -> None:
        _one_of(self, "routing", ROUTING_MODES)
        _at_least(self, ("gumbel_tau", "gumbel_tau_min"), 0, strict=True)
        _need(self.gumbel_tau > 0 and 0 < self.gumbel_tau_min <= self.gumbel_tau,
              f"need 0 < --gumbel_tau_min <= --gumbel_tau, got {self.gumbel_tau_min} and {self.gumbel_tau}")
        _at_least(self, ("balance_weight", "margin"), 0)
        _one_of(self, "balance", BALANCE_MODES)
        _need(0 < self.min_share <= 1, f"--router_min_share must be in (0, 1], got {self.min_share}")
        _at_least(self, ("hidden", "cost_every"), 1)
        pins = parse_route_styles(self.route_styles)  # raises on a malformed list
        _need(self.routing != "styles" or bool(pins),
              "--routing styles needs --route_styles STYLE=1|2|both[,...] (e.g. tot=2)")
        _need(self.routing == "styles" or not pins,
              f"--route_styles is only read with --routing styles, got --routing {self.routing}")


#: --route_styles values -> route code (1 = student 1 only, 2 = student 2 only, 3 = both)
_ROUTE_CODES = {"1": 1, "2": 2, "both": 3, "3": 3}


def parse_route_styles(text: str) -> dict[str, int]:
    """``"tot=2,program=both"`` -> ``{"tot": 2, "program": 3}`` (route codes); "" -> ``{}``.
    Raises :class:`~distill.errors.ConfigError` naming the malformed entry."""
    pins: dict[str, int] = {}
    for item in (x.strip() for x in str(text or "").split(",")):
        if not item:
            continue
        style, eq, value = item.partition("=")
        style, value = style.strip(), value.strip().lower()
        _need(bool(eq) and bool(style) and value in _ROUTE_CODES,
              f"--route_styles: {item!r} is not STYLE=1|2|both (e.g. tot=2)")
        _need(style not in pins, f"--route_styles names style {style!r} twice")
        pins[style] = _ROUTE_CODES[value]
    return pins
