"""Reasoning styles: wrappers that turn a task's core prompt into one way of thinking.

Why a registry: the method trains a router to pick which student learns which kind of
reasoning path, so every path must carry the *name* of the style that produced it, and
the scripted demo teacher and the router analysis refer to the same names. Users add
styles with :func:`register_style` or a YAML/JSON file (``--styles-file``) mapping
``name: template``; a template must contain ``{core}`` where the task prompt goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from distill.errors import ConfigError, DistillError


@dataclass(frozen=True)
class Style:
    """A named template; ``{core}`` is replaced by the task's core prompt."""

    name: str
    template: str

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"style name {self.name!r} must be a non-empty identifier (letters, digits, _ or -)")
        if "{core}" not in self.template:
            raise ConfigError(f"style {self.name!r}: template must contain '{{core}}' where the task prompt goes")

    def wrap(self, core: str) -> str:
        # str.replace, not str.format: questions and tables contain braces.
        return self.template.replace("{core}", core)


class UnknownStyleError(DistillError, ValueError):
    """A style name not in the registry; the message lists the valid ones."""


_BUILTIN = [
    Style("cot", "{core}\n\nLet's think step by step, writing out each step of the reasoning before the final answer."),
    Style("program", "{core}\n\nSolve this by first writing a short Python program that computes the answer, "
                     "then trace its execution by hand and state the result it prints."),
    Style("knowledge", "{core}\n\nFirst recall the facts, definitions and formulas relevant to this problem, "
                       "then use them to reason to the answer."),
    Style("tot", "{core}\n\nConsider two or three different approaches to this problem, briefly evaluate each, "
                 "then follow the most promising one to the answer."),
    Style("fwd_bwd", "{core}\n\nReason forward from what is given to a candidate answer, then reason backward from "
                     "that answer to check it is consistent with the problem before committing to it."),
    Style("plain", "{core}"),
    # the dataset's own worked solution (--backend reference); never in the default rotation
    Style("reference", "{core}"),
]

STYLES: dict[str, Style] = {s.name: s for s in _BUILTIN}

#: The default rotation for ``--n`` paths per question.
DEFAULT_STYLES: tuple[str, ...] = ("cot", "program", "knowledge", "tot", "fwd_bwd", "plain")


def register_style(name: str, template: str, *, overwrite: bool = False) -> Style:
    """Add a style to the registry (used by ``--styles-file`` and by library users)."""
    if name in STYLES and not overwrite:
        raise ConfigError(f"style {name!r} already exists; pick another name or pass overwrite=True")
    style = Style(name, template)
    STYLES[name] = style
    return style


def get_style(name: str) -> Style:
    try:
        return STYLES[name]
    except KeyError:
        raise UnknownStyleError(f"unknown style {name!r}; valid styles: {', '.join(STYLES)}") from None


def parse_styles(spec: str | None) -> list[Style]:
    """``"cot,program"`` -> styles (default: all of :data:`DEFAULT_STYLES`)."""
    if spec is None or not spec.strip():
        return [STYLES[n] for n in DEFAULT_STYLES]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise ConfigError(f"--styles lists a style twice: {spec!r}")
    return [get_style(n) for n in names]


def load_styles_file(path: str | Path) -> list[Style]:
    """Register the styles of a YAML or JSON file ``{name: template}``; returns them in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DistillError(f"cannot read styles file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml/json syntax errors: say which file
        raise DistillError(f"{path}: cannot parse styles file: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise DistillError(f"{path}: styles file must map style names to template strings")
    return [register_style(k, v, overwrite=True) for k, v in data.items()]
