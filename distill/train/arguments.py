"""The ``distill train`` command-line parser (one flag per field) and the reading of run YAML files.

:func:`build_arg_parser` is generated from the section fields (:data:`~distill.train.flat.SECTIONS`),
so a field added to a section is a flag everywhere; :func:`load_yaml` reads a ``--config`` file (or a
built-in config) and names the line of a value that is not a single scalar.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from distill.errors import ConfigError
from distill.options import flag_of
from distill.train.flat import ALIAS_HELP, FLAT, SECTIONS, _base_type


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
