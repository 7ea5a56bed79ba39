"""Backend factory: ``get_backend("openai" | "gemini" | "scripted", **opts)``.

Each backend module is imported only when chosen, so ``distill prompt --backend
scripted`` never imports the OpenAI or Gemini SDKs.
"""

from __future__ import annotations

from typing import Any

from distill.errors import ConfigError
from distill.prompting.backend import Backend

BACKENDS = ("openai", "gemini", "scripted")


def get_backend(name: str, **opts: Any) -> Backend:
    """Build a backend. Options: ``model``, ``base_url``, ``api_key``, ``request_timeout``,
    ``concurrency`` (API backends); ``wrong_rate``, ``seed`` (scripted)."""
    if name == "openai":
        from distill.prompting.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(**opts)
    if name == "gemini":
        from distill.prompting.backends.gemini_backend import GeminiBackend

        return GeminiBackend(**opts)
    if name == "scripted":
        from distill.demo.teacher import ScriptedBackend  # the offline demo teacher

        kw = {k: opts[k] for k in ("wrong_rate", "seed") if k in opts}
        return ScriptedBackend(**kw)
    raise ConfigError(f"unknown backend {name!r}; valid backends: {', '.join(BACKENDS)}")
