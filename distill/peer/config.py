"""``PeerConfig``: the peer-teaching section of a run's configuration (``distill train`` flags)."""

from __future__ import annotations

from dataclasses import dataclass

from distill.options import at_least as _at_least
from distill.options import one_of as _one_of
from distill.options import option as _f

#: ``auto``: ``kl`` when both students share one vocabulary, else ``hidden``; ``none``: no peer teaching
PEER_MODES = ("auto", "kl", "hidden", "uld", "none")
PEER_SCOPES = ("co_routed", "all")


@dataclass
class PeerConfig:
    """Peer teaching: each student learns from a learned, per-sample weighted ensemble of both."""

    mode: str = _f("auto", "kl: token KL toward the ensemble (students share one tokenizer); hidden: "
                           "character-aligned projected hidden states (any tokenizers); uld: universal logit "
                           "distillation (any tokenizers); auto: kl if the vocabularies match, else hidden; "
                           "none: no peer teaching", flag="peer")
    weight: float = _f(0.1, "weight of the peer-teaching loss", flag="peer_weight")
    temperature: float = _f(2.0, "softmax temperature of the peer-teaching loss", flag="peer_temperature")
    dim: int = _f(64, "shared projection size of --peer hidden", flag="peer_dim")
    scope: str = _f("co_routed", "co_routed: peer teaching on paths routed to both students; all: also on a path "
                                 "routed to one student, where the other learns it from the ensemble only (never "
                                 "from the teacher tokens); costs that student a backward on every path",
                    flag="peer_scope")

    def __post_init__(self) -> None:
        _one_of(self, "mode", PEER_MODES)
        _one_of(self, "scope", PEER_SCOPES)
        _at_least(self, ("weight",), 0)
        _at_least(self, ("temperature",), 0, strict=True)
        _at_least(self, ("dim",), 1)

    @property
    def enabled(self) -> bool:
        return self.mode != "none"
