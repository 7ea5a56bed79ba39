"""``TrainConfig``: every knob of ``distill train``, typed by section and validated in one place.

A run's configuration has eight sections, each a small dataclass that checks its own ranges in
``__post_init__``: :class:`DataConfig`, :class:`StudentsConfig`, :class:`LoraConfig`,
:class:`OptimConfig`, :class:`RouterConfig`, :class:`PeerConfig`, :class:`EvalConfig` and
:class:`RuntimeConfig`. :class:`TrainConfig` holds them and checks the combinations. Every check
runs when the config is built, so a bad value fails with one :class:`~distill.errors.ConfigError`
naming the flag and what to change -- before any model loads or any path is embedded.

Users write **flat** keys, on the command line (``--balance_weight 1.0``, also ``--balance-weight``)
and in YAML (``balance_weight: 1.0``); YAML may also nest them by section (``router: {balance_weight:
1.0}``). Each field's flat name is its ``flag`` metadata (default: the field name). The command-line
parser is generated from the fields, so a field added here is a flag everywhere. Research-code
flags stay as aliases (:data:`ALIAS_HELP`): ``--is_router true`` = ``--routing learned``, ``--use_kl
true/false`` = ``--peer auto/none``, ``--peer_loss X`` = ``--peer X``, ``--kl_weight`` =
``--peer_weight``, ``--lr_misc`` = ``--lr_router``. Booleans accept ``true/false/1/0/yes/no``.

The pieces live in their own modules and are re-exported here: :mod:`distill.train.flat` (the flat-key
table, aliases, recipes, type coercion) and :mod:`distill.train.arguments` (the command-line parser
and YAML files).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from distill.errors import ConfigError
from distill.options import need as _need
from distill.peer.config import PeerConfig
from distill.router.config import RouterConfig
from distill.train.arguments import build_arg_parser, load_yaml
from distill.train.flat import _PEER_ON, ALIAS_HELP, FLAT, RECIPES, SECTIONS, _coerce, _flatten, parse_bool
from distill.train.sections import (DataConfig, EvalConfig, LoraConfig, OptimConfig, RuntimeConfig,
                                    StudentsConfig)

__all__ = [
    "ALIAS_HELP", "FLAT", "RECIPES", "SECTIONS", "DataConfig", "EvalConfig", "LoraConfig", "OptimConfig",
    "PeerConfig", "RouterConfig", "RuntimeConfig", "StudentsConfig", "TrainConfig", "build_arg_parser",
    "config_from_cli", "config_from_sources", "load_yaml", "parse_bool", "parse_train_args",
]


@dataclass
class TrainConfig:
    """One training run: the sections above, plus the checks that span sections."""

    data: DataConfig
    students: StudentsConfig
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    peer: PeerConfig = field(default_factory=PeerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        if self.students.is_sft:
            _need(self.router.routing == "all" and not self.peer.enabled,
                  "--is_sft trains one student: set --routing all and --peer none")

    @classmethod
    def from_flat(cls, **values: Any) -> "TrainConfig":
        """Build from flat keys (``task=..., lora_r=8, balance_weight=1.0``; aliases allowed), as the
        command line and YAML files spell them. Values are coerced to the fields' types."""
        return config_from_sources({}, values)

    def to_flat(self) -> dict[str, Any]:
        """Flat ``{flag: value}``: the form of ``train_config.json``, loadable again with ``--config``."""
        return {flag: getattr(getattr(self, sec), name) for flag, (sec, name) in FLAT.items()}

    def to_dict(self) -> dict[str, Any]:
        """Nested ``{section: {field: value}}``."""
        return dataclasses.asdict(self)


def config_from_sources(yaml_values: dict[str, Any], cli_values: dict[str, Any]) -> TrainConfig:
    """Merge recipe, YAML, then command line (hyphens, sections and aliases normalised, types coerced)
    into a validated TrainConfig.

    ``recipe`` lays its keys just under those of the source that names it (so ``--recipe separate``
    on the command line overrides a config file's ``routing``, while ``--routing`` beside it wins);
    ``is_sft true`` without an explicit ``routing``/``peer`` means ``routing all`` and ``peer none``."""
    merged: dict[str, Any] = {}
    sources = []
    recipe = None
    for source, given in (("config file", yaml_values), ("command line", cli_values)):
        values = dict(given)
        for key in [k for k in values if str(k).replace("-", "_") == "recipe"]:
            recipe = str(values.pop(key))
            if recipe not in RECIPES:
                raise ConfigError(f"--recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
            # a recipe sits just under the keys of the source that names it: --recipe on the command
            # line beats the config file's routing/peer, and loses to explicit flags beside it
            sources.append((f"recipe {recipe}", dict(RECIPES[recipe])))
        sources.append((source, values))
    for source, values in sources:
        for flat, value in _flatten(values, source).items():
            if value == _PEER_ON:
                value = merged["peer"] if merged.get("peer") not in (None, "none") else "auto"
            merged[flat] = _coerce(flat, value)
    if merged.get("is_sft"):
        merged.setdefault("routing", "all")
        merged.setdefault("peer", "none")
    if recipe == "solo2":
        if not merged.get("model2"):
            raise ConfigError("--recipe solo2 trains student 2 alone: pass --model2")
        merged["model1"] = merged["model2"]
    merged["recipe"] = recipe or "custom"
    parts: dict[str, dict[str, Any]] = {sec: {} for sec in SECTIONS}
    for flat, value in merged.items():
        sec, name = FLAT[flat]
        parts[sec][name] = value
    return TrainConfig(**{sec: SECTIONS[sec](**kw) for sec, kw in parts.items()})


def config_from_cli(cli: dict[str, Any]) -> TrainConfig:
    """Parsed flags (``vars(namespace)`` of :func:`build_arg_parser`) -> TrainConfig, reading the
    YAML file named by ``config`` first."""
    yaml_values = load_yaml(cli["config"]) if cli.get("config") else {}
    return config_from_sources(yaml_values, cli)


def parse_train_args(argv: list[str] | None = None) -> TrainConfig:
    """``distill train`` argv -> TrainConfig (YAML ``--config`` first, then the flags)."""
    return config_from_cli(vars(build_arg_parser().parse_args(argv)))
