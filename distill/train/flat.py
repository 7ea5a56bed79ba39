"""The flat-key table of ``distill train`` and the resolution of aliases, recipes and value types.

Users write **flat** keys, on the command line and in YAML; each field's flat name is its ``flag``
metadata (default: the field name). :data:`FLAT` maps a flat key to its ``(section, field)``;
:func:`_flatten` opens nested sections and resolves the research-code aliases (:data:`ALIAS_HELP`);
:func:`_coerce` turns a value into the field's type; :data:`RECIPES` are the ``--recipe`` presets.
:mod:`distill.train.config` merges the sources into a ``TrainConfig``.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, get_args, get_origin

from distill.errors import ConfigError
from distill.options import flag_of
from distill.peer.config import PeerConfig
from distill.router.config import RouterConfig
from distill.train.sections import (DataConfig, EvalConfig, LoraConfig, OptimConfig, RuntimeConfig,
                                    StudentsConfig)


SECTIONS: dict[str, type] = {"data": DataConfig, "students": StudentsConfig, "lora": LoraConfig,
                             "optim": OptimConfig, "router": RouterConfig, "peer": PeerConfig,
                             "eval": EvalConfig, "runtime": RuntimeConfig}


# ------------------------------------------------------------------------------ flat key table
#: flat key -> (section, field name), in section order
FLAT: dict[str, tuple[str, str]] = {
    flag_of(cls, f.name): (sec, f.name) for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


#: research-code and old flag names, resolved by :func:`_flatten`
ALIAS_HELP = {
    "is_router": "research alias: true => --routing learned, false => --routing all",
    "use_kl": "research alias: true => --peer auto (or the --peer/--peer_loss given), false => --peer none",
    "peer_loss": "old name of --peer",
    "kl_weight": "old name of --peer_weight",
    "lr_misc": "old name of --lr_router",
}
_RENAMED = {"peer_loss": "peer", "kl_weight": "peer_weight", "lr_misc": "lr_router"}
_PEER_ON = "<use_kl true>"  # --use_kl true: keep a mode given elsewhere, else auto


def parse_bool(value: Any) -> bool:
    """``true/false/1/0/yes/no/on/off`` (any case) -> bool; ConfigError otherwise."""
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("true", "1", "yes", "y", "on"):
        return True
    if s in ("false", "0", "no", "n", "off"):
        return False
    raise ConfigError(f"expected true or false, got {value!r}")


def _base_type(tp) -> type:
    """``int | None`` -> int, ``str`` -> str, ``bool | None`` -> bool."""
    if isinstance(tp, str):  # postponed annotations
        tp = eval(tp, {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)})  # noqa: S307
    if get_origin(tp) is not None or type(tp).__name__ == "UnionType":
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _field(flat: str) -> dataclasses.Field:
    sec, name = FLAT[flat]
    return {f.name: f for f in dataclasses.fields(SECTIONS[sec])}[name]


def _coerce(flat: str, value: Any) -> Any:
    if isinstance(value, (list, tuple, dict, set)):  # every option is one scalar (a YAML list used to crash)
        raise ConfigError(f"--{flat}: expected a single value, got a {'mapping' if isinstance(value, dict) else 'list'}")
    tp = _base_type(_field(flat).type)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and tp is not str):
        return None
    try:
        if tp is bool:
            return parse_bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if tp is float:
            return float(value)
        return str(value)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"--{flat}: {exc}") from None


def _unknown(key: str, source: str) -> ConfigError:
    known = list(FLAT) + list(ALIAS_HELP) + list(SECTIONS)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; see distill train --help"
    return ConfigError(f"unknown option {key!r} in {source}{hint}")


def _flatten(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Normalise hyphens, open nested sections and resolve aliases; unknown keys are errors.

    A canonical key beats its old name in the same source; ``is_router`` sets ``routing`` (as the
    research code did); ``use_kl false`` turns peer teaching off, ``use_kl true`` turns it on in
    the mode given by ``peer``/``peer_loss`` (any source), else ``auto``."""
    out: dict[str, Any] = {}
    aliases: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in SECTIONS and isinstance(value, dict):
            for sub, sub_value in value.items():
                sub = str(sub).replace("-", "_")
                flat = next((fl for fl, (s, n) in FLAT.items() if s == name and sub in (n, fl)), None)
                if flat is None:
                    raise _unknown(f"{name}.{sub}", source)
                out[flat] = sub_value
        elif name in FLAT:
            out[name] = value
        elif name in ALIAS_HELP:
            aliases[name] = value
        else:
            raise _unknown(str(key), source)
    for old, new in _RENAMED.items():
        if old in aliases:
            out.setdefault(new, aliases[old])
    try:
        if "is_router" in aliases:
            out["routing"] = "learned" if parse_bool(aliases["is_router"]) else "all"
        if "use_kl" in aliases:
            out["peer"] = out.get("peer", _PEER_ON) if parse_bool(aliases["use_kl"]) else "none"
    except ConfigError as exc:
        raise ConfigError(f"{source}: --is_router/--use_kl: {exc}") from None
    return out


#: ``--recipe NAME``: the method and its baselines, one flag each (keys given explicitly still win)
RECIPES: dict[str, dict[str, Any]] = {
    "custom": {},                                            # the keys as given (the defaults: full)
    "full": {"routing": "learned", "peer": "auto"},          # QR-Distill: routing + peer teaching
    "routing_only": {"routing": "learned", "peer": "none"},
    "peer_only": {"routing": "all", "peer": "auto"},
    "random_routing": {"routing": "random", "peer": "auto"},
    "separate": {"routing": "all", "peer": "none"},          # two students, every path, no interaction
    "solo1": {"is_sft": True, "routing": "all", "peer": "none"},   # student 1 alone
    "solo2": {"is_sft": True, "routing": "all", "peer": "none"},   # student 2 alone (model2 becomes model1)
}
