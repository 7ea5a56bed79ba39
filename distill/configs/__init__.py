"""Built-in configuration files, shipped inside the package (so an installed ``distill`` has them).

Three kinds, one folder each:

- ``train``: run YAMLs for ``distill train --config NAME`` (``demo``, ``gsm8k_lora``).
- ``accelerate``: ``accelerate launch --config_file`` YAMLs (``single``, ``cpu_ddp``, ``multi_gpu``,
  ``zero2``, ``zero3``). Accelerate needs a path: ``--config_file "$(distill configs zero2)"``.
- ``deepspeed``: the DeepSpeed JSONs the ``zero2``/``zero3`` YAMLs name (``ds_zero2``, ``ds_zero3``).
  Those YAMLs say ``deepspeed_config_file: ds_zero2.json``, a bare name that accelerate hands to the
  training processes unchanged (``ACCELERATE_DEEPSPEED_CONFIG_FILE``); ``distill train`` resolves it
  with :func:`resolve_deepspeed_env` before the Accelerator reads it. A file of that name in the
  current folder wins, so a copied-and-edited pair keeps working.

Why names and not repository paths: a wheel install has no checkout, and a path relative to the
current folder breaks as soon as the command runs elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from distill.errors import ConfigError

ROOT = Path(__file__).resolve().parent
#: kind -> (folder under distill/configs, file suffix)
KINDS: dict[str, tuple[str, str]] = {
    "train": ("train", ".yaml"),
    "accelerate": ("accelerate", ".yaml"),
    "deepspeed": ("deepspeed", ".json"),
}
DEEPSPEED_ENV = "ACCELERATE_DEEPSPEED_CONFIG_FILE"


def _kind(kind: str) -> tuple[Path, str]:
    if kind not in KINDS:
        raise ConfigError(f"unknown config kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    folder, suffix = KINDS[kind]
    return ROOT / folder, suffix


def builtin_names(kind: str) -> list[str]:
    """Sorted names of the built-in configs of ``kind`` (file stems: ``demo``, ``zero2``, ...)."""
    folder, suffix = _kind(kind)
    return sorted(p.stem for p in folder.glob(f"*{suffix}") if p.is_file())


def builtin_path(name: str, kind: str) -> Path | None:
    """The packaged file for a built-in ``name`` (with or without its suffix), or None."""
    folder, suffix = _kind(kind)
    stem = name[: -len(suffix)] if name.endswith(suffix) else name
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        return None
    path = folder / f"{stem}{suffix}"
    return path if path.is_file() else None


def find_config(name_or_path: str | os.PathLike[str], kind: str) -> Path:
    """An existing file -> itself; a built-in name of ``kind`` -> the packaged file; else ConfigError.

    ``find_config("demo", "train")`` and ``find_config("zero2", "accelerate")`` give the packaged
    files; ``find_config("my/run.yaml", "train")`` gives ``Path("my/run.yaml")`` if it exists. The
    error lists the built-in names, so a typo says what is available.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    found = builtin_path(str(name_or_path), kind)
    if found is not None:
        return found
    names = ", ".join(builtin_names(kind)) or "(none)"
    raise ConfigError(f"{kind} config {str(name_or_path)!r} not found: no such file, and not a built-in "
                      f"{kind} config (built-in: {names})")


def find_any(name: str) -> tuple[str, Path]:
    """``(kind, path)`` of the built-in config called ``name`` in whichever kind has it (names are
    unique across kinds); ConfigError listing every built-in name otherwise."""
    hits = [(kind, p) for kind in KINDS if (p := builtin_path(name, kind)) is not None]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ConfigError(f"{name!r} is a built-in config of several kinds ({', '.join(k for k, _ in hits)}); "
                          "pass --kind")
    listing = "; ".join(f"{kind}: {', '.join(builtin_names(kind))}" for kind in KINDS)
    raise ConfigError(f"no built-in config named {name!r} ({listing})")


def resolve_deepspeed_env(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Point ``ACCELERATE_DEEPSPEED_CONFIG_FILE`` at the packaged JSON when it holds a built-in name.

    Call before the Accelerator is created. Leaves an existing file, inline JSON and "none" alone;
    a value that is neither a file nor a built-in name is also left alone, so accelerate reports it.
    Returns the value now set (or None when the variable is unset).
    """
    env = os.environ if environ is None else environ
    value = env.get(DEEPSPEED_ENV)
    if not value or value == "none" or Path(value).is_file():
        return value
    found = builtin_path(value, "deepspeed")
    if found is not None:
        env[DEEPSPEED_ENV] = str(found)
        return str(found)
    return value
