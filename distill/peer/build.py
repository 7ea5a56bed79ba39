"""``build_peer(cfg, student1, student2, tok1, tok2)``: the engine's entry point into peer teaching.

``cfg`` is the run's validated :class:`~distill.peer.config.PeerConfig`: ``mode`` (``none`` -> no
peer module: the no-collaboration ablation; ``auto`` | ``kl`` | ``uld`` | ``hidden``), ``weight``,
``temperature``, ``dim`` and ``scope`` (``co_routed`` | ``all``: which paths carry a peer signal, see
:mod:`distill.peer.module`); ranges were checked when it was built. ``auto`` compares the
*vocabularies* (token -> id maps) and the models' output sizes, never the model names: two
checkpoints with different names can share a tokenizer, and two with the same family name can differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from distill.errors import ConfigError
from distill.peer.module import PEER_MODES, PeerTeacher

if TYPE_CHECKING:
    from distill.peer.config import PeerConfig


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
        raise ConfigError(f"--peer must be one of auto, {', '.join(PEER_MODES)}, none; got {requested!r}")
    same = same_vocabulary(student1, student2, tok1, tok2)
    if requested == "auto":
        return "kl" if same else "hidden"
    if requested == "kl" and not same:
        raise ConfigError("--peer kl needs both students to share one vocabulary; these differ: "
                          "use --peer hidden or uld (or auto)")
    return requested


def build_peer(cfg: "PeerConfig", student1: nn.Module, student2: nn.Module, tok1: Any, tok2: Any) -> PeerTeacher | None:
    """``None`` when ``cfg.mode`` is ``none``, else a :class:`PeerTeacher` for the resolved mode."""
    if cfg.mode == "none":
        return None
    mode = resolve_peer_mode(cfg.mode, student1, student2, tok1, tok2)
    h1 = int(_config(student1).hidden_size)
    h2 = int(_config(student2).hidden_size)
    return PeerTeacher(mode, h1, h2, kl_weight=cfg.weight, temperature=cfg.temperature, dim=cfg.dim,
                       scope=cfg.scope)
