"""``build_peer(cfg, student1, student2, tok1, tok2)``: the engine's entry point into peer teaching.

``cfg`` fields used: ``use_kl`` (off -> ``None``: no collaboration ablation), ``peer_loss``
(``auto`` | ``kl`` | ``uld`` | ``hidden``), ``kl_weight``, ``peer_temperature`` and optionally
``peer_dim``. ``auto`` compares the *vocabularies* (token -> id maps) and the models' output sizes,
never the model names: two checkpoints with different names can share a tokenizer, and two with
the same family name can differ.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from distill.errors import ConfigError
from distill.peer.module import PEER_MODES, PeerTeacher


def _config(model: nn.Module):
    cfg = getattr(model, "config", None)
    if cfg is None and hasattr(model, "get_base_model"):
        cfg = model.get_base_model().config
    if cfg is None:
        raise ConfigError(f"cannot read the model config of {type(model).__name__} to size the peer module")
    return cfg


def same_vocabulary(student1: nn.Module, student2: nn.Module, tok1: Any, tok2: Any) -> bool:
    """True when token-level distributions of the two students can be mixed position by position."""
    if tok1.get_vocab() != tok2.get_vocab():
        return False
    v1 = student1.get_output_embeddings().weight.shape[0]
    v2 = student2.get_output_embeddings().weight.shape[0]
    return v1 == v2


def resolve_peer_mode(requested: str, student1, student2, tok1, tok2) -> str:
    """``auto`` -> ``kl`` for identical vocabularies, else ``hidden``; ``kl`` is refused across vocabularies."""
    if requested not in ("auto",) + PEER_MODES:
        raise ConfigError(f"peer_loss must be one of auto, {', '.join(PEER_MODES)}, got {requested!r}")
    same = same_vocabulary(student1, student2, tok1, tok2)
    if requested == "auto":
        return "kl" if same else "hidden"
    if requested == "kl" and not same:
        raise ConfigError("peer_loss=kl needs both students to share one vocabulary; these differ: "
                          "use --peer_loss hidden or uld (or auto)")
    return requested


def build_peer(cfg: Any, student1: nn.Module, student2: nn.Module, tok1: Any, tok2: Any) -> nn.Module | None:
    """``None`` when ``use_kl`` is off, else a :class:`PeerTeacher` for the resolved mode."""
    if not getattr(cfg, "use_kl", False):
        return None
    mode = resolve_peer_mode(getattr(cfg, "peer_loss", "auto"), student1, student2, tok1, tok2)
    kl_weight = float(getattr(cfg, "kl_weight", 1.0))
    temperature = float(getattr(cfg, "peer_temperature", 1.0))
    if kl_weight < 0:
        raise ConfigError(f"kl_weight must be >= 0, got {kl_weight}")
    if temperature <= 0:
        raise ConfigError(f"peer_temperature must be > 0, got {temperature}")
    h1 = int(_config(student1).hidden_size)
    h2 = int(_config(student2).hidden_size)
    return PeerTeacher(mode, h1, h2, kl_weight=kl_weight, temperature=temperature,
                       dim=int(getattr(cfg, "peer_dim", 64) or 64))
