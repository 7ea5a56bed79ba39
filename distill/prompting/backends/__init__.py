"""Backend registry: ``get_backend(name, **opts)`` for ``openai``, ``gemini``, ``openai-batch``,
``reference`` and plug-ins.

A backend *factory* is any callable ``factory(**opts) -> Backend``; it receives every option of
``distill prompt`` / ``distill judge`` (``model``, ``base_url``, ``request_timeout``,
``concurrency``, ``seed``, ``wrong_rate``, and the batch options ``batch_dir``, ``batch_poll``,
``batch_size``) and takes what it needs. Add one in-process with
:func:`register_backend`, or for every process (and ``distill prompt --backend NAME``) by declaring
it as an entry point of group ``distill.backends`` in an installed package. The offline demo's
``scripted`` teacher is such a plug-in (``distill.demo.teacher:scripted_backend``).

Each built-in backend's module is imported only when chosen, so ``--backend scripted`` never
imports the OpenAI or Gemini SDKs.
"""

from __future__ import annotations

from typing import Any, Callable

from distill.errors import ConfigError
from distill.plugins import PluginRegistry
from distill.prompting.backend import Backend

BackendFactory = Callable[..., Backend]
ENTRY_POINT_GROUP = "distill.backends"


def _openai(**opts: Any) -> Backend:
    from distill.prompting.backends.openai_backend import OpenAIBackend

    return OpenAIBackend(**opts)


def _gemini(**opts: Any) -> Backend:
    from distill.prompting.backends.gemini_backend import GeminiBackend

    return GeminiBackend(**opts)


def _openai_batch(**opts: Any) -> Backend:
    from distill.prompting.backends.openai_batch import OpenAIBatchBackend

    return OpenAIBatchBackend(**opts)


def _reference(**opts: Any) -> Backend:
    from distill.prompting.backends.reference import ReferenceBackend

    return ReferenceBackend(**opts)


#: The built-in backends, in the order ``--help`` lists them.
BUILTIN_BACKENDS: dict[str, BackendFactory] = {"openai": _openai, "gemini": _gemini,
                                               "openai-batch": _openai_batch, "reference": _reference}


class BackendRegistry(PluginRegistry[BackendFactory]):
    def _check(self, name: str, obj: object) -> BackendFactory:
        if not callable(obj):
            raise TypeError(f"expected a backend factory (a callable), got {type(obj).__name__}")
        return obj  # type: ignore[return-value]


#: name -> factory (a Mapping; iterating also lists the plug-ins).
BACKENDS = BackendRegistry(ENTRY_POINT_GROUP, "backend", dict(BUILTIN_BACKENDS))


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> BackendFactory:
    """Make ``get_backend(name, ...)`` call ``factory(**opts)``. Returns ``factory``."""
    if not callable(factory):
        raise TypeError(f"register_backend needs a callable factory, got {type(factory).__name__}")
    return BACKENDS.register(name, factory, replace=replace)


def backend_names() -> list[str]:
    """Built-in backends first, then registered and plug-in ones."""
    names = list(BACKENDS)
    builtin = [n for n in BUILTIN_BACKENDS if n in names]
    return builtin + sorted(n for n in names if n not in BUILTIN_BACKENDS)


def get_backend(name: str, **opts: Any) -> Backend:
    """Build a backend. Options: ``model``, ``base_url``, ``api_key``, ``request_timeout``,
    ``concurrency`` (API backends); ``wrong_rate``, ``seed`` (scripted)."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; valid backends: {', '.join(backend_names())}"
                          f"{BACKENDS.failure_note(name)}") from None
    return factory(**opts)
