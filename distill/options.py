"""Typed option fields shared by the config sections (``distill.train.config`` and the router's and
peer module's own sections): one ``help`` text and one flat ``flag`` name per field, and the range
checks that raise one :class:`~distill.errors.ConfigError` naming the flag and what to change."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field

from distill.errors import ConfigError


def option(default, help: str, flag: str | None = None):
    """A dataclass field with its ``--help`` text and flat flag name (default: the field name)."""
    return field(default=default, metadata={"help": help, "flag": flag})


def flag_of(section_type: type, name: str) -> str:
    """The flat flag name of field ``name`` of a section dataclass."""
    f = {f.name: f for f in dataclasses.fields(section_type)}[name]
    return f.metadata.get("flag") or name


def need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def at_least(section, names: tuple[str, ...], low: float, strict: bool = False) -> None:
    """Every named field of ``section`` (``None`` skipped) is ``>= low`` (``> low`` when ``strict``)."""
    for name in names:
        value = getattr(section, name)
        if value is None:
            continue
        flag = flag_of(type(section), name)
        need(math.isfinite(value), f"--{flag} must be a finite number, got {value}")
        if strict:
            need(value > low, f"--{flag} must be > {low}, got {value}")
        else:
            need(value >= low, f"--{flag} must be >= {low}, got {value}")


def one_of(section, name: str, valid: tuple[str, ...]) -> None:
    value = getattr(section, name)
    need(value in valid, f"--{flag_of(type(section), name)} must be one of {', '.join(valid)}, got {value!r}")
