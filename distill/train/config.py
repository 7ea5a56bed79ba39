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
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from distill.errors import ConfigError
from distill.options import flag_of
from distill.options import need as _need
from distill.peer.config import PeerConfig
from distill.router.config import RouterConfig
from distill.train.sections import (DataConfig, EvalConfig, LoraConfig, OptimConfig, RuntimeConfig,
                                    StudentsConfig)



SECTIONS: dict[str, type] = {"data": DataConfig, "students": StudentsConfig, "lora": LoraConfig,
                             "optim": OptimConfig, "router": RouterConfig, "peer": PeerConfig,
                             "eval": EvalConfig, "runtime": RuntimeConfig}


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


# ------------------------------------------------------------------------------------ parsing
def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """One flag per field, spelled ``--a_b`` and ``--a-b``, grouped by section; defaults suppressed so
    that only flags actually given override the YAML file."""
    parser = parser or argparse.ArgumentParser(
        prog="distill train", description="Train two LoRA students on teacher reasoning paths.",
        argument_default=argparse.SUPPRESS)
    for sec, cls in SECTIONS.items():
        group = parser.add_argument_group(sec, (cls.__doc__ or "").strip().splitlines()[0])
        for f in dataclasses.fields(cls):
            flat = flag_of(cls, f.name)
            flags = [f"--{flat}"] + ([f"--{flat.replace('_', '-')}"] if "_" in flat else [])
            group.add_argument(*flags, dest=flat, metavar=_base_type(f.type).__name__.upper(),
                               default=argparse.SUPPRESS, help=f"{f.metadata['help']} (default: {f.default})")
    group = parser.add_argument_group("aliases", "research-code and old flag names")
    for name, help_ in ALIAS_HELP.items():
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        group.add_argument(*flags, dest=name, metavar="VALUE", default=argparse.SUPPRESS, help=help_)
    return parser


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A run YAML as a mapping; ``path`` may also name a built-in config (``distill.configs``)."""
    import yaml

    p = _resolve_config(str(path))
    try:
        text = p.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{line}: not valid UTF-8 (byte 0x{exc.object[exc.start]:02x}); save the config "
                          "as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: invalid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise ConfigError(f"--config {path}: invalid YAML (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option: value")
    _check_scalar_values(yaml, text, p)
    return data


def _check_scalar_values(yaml, text: str, path: Path) -> None:
    """``FILE:LINE: field 'KEY': expected a single value`` for an option given a list (or, inside a
    section, a mapping); read from the YAML nodes, which keep the line numbers ``safe_load`` drops."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return
    for key, node in root.value:
        name = str(key.value).replace("-", "_")
        if name in SECTIONS and isinstance(node, yaml.MappingNode):
            pairs = [(f"{name}.{k.value}", v) for k, v in node.value]
        elif name in FLAT or name in ALIAS_HELP:
            pairs = [(str(key.value), node)]
        else:
            continue  # an unknown key: config_from_sources names it, with a did-you-mean
        for flat, value in pairs:
            if isinstance(value, yaml.SequenceNode) or (isinstance(value, yaml.MappingNode) and "." in flat):
                kind = "a list" if isinstance(value, yaml.SequenceNode) else "a mapping"
                hint = " (list module names as one comma-separated string)" if flat.endswith("targets") else ""
                raise ConfigError(f"{path}:{value.start_mark.line + 1}: field {flat!r}: expected a single value, "
                                  f"got {kind}{hint}")


def _resolve_config(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    try:
        from distill.configs import find_config
    except ImportError:
        raise ConfigError(f"--config {name_or_path}: no such file") from None
    return find_config(name_or_path, "train")


def config_from_cli(cli: dict[str, Any]) -> TrainConfig:
    """Parsed flags (``vars(namespace)`` of :func:`build_arg_parser`) -> TrainConfig, reading the
    YAML file named by ``config`` first."""
    yaml_values = load_yaml(cli["config"]) if cli.get("config") else {}
    return config_from_sources(yaml_values, cli)


def parse_train_args(argv: list[str] | None = None) -> TrainConfig:
    """``distill train`` argv -> TrainConfig (YAML ``--config`` first, then the flags)."""
    return config_from_cli(vars(build_arg_parser().parse_args(argv)))
