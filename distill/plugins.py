"""Registries that packages extend without distill knowing them: in-process ``register`` calls
plus discovery through package entry points.

Why entry points: a task or teacher backend must be usable from every process that distill
starts (verifier workers, ``accelerate launch`` ranks, the ``distill`` command itself), and those
are fresh interpreters that never ran the user's ``register_*`` call. An installed package that
declares ``[project.entry-points."distill.tasks"] my_task = "my_pkg.tasks:MY_TASK"`` is found by all
of them. Entry points load lazily: looking up a name that is not registered loads only the entry
point of that name; listing the names (iterating) loads them all. The demo's ``arith`` task and
``scripted`` backend are plug-ins of exactly this kind (see ``pyproject.toml``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class PluginRegistry(Mapping[str, T], Generic[T]):
    """A read-only name -> object mapping fed by :meth:`register` and by the entry points of
    ``group``. Subclasses validate what an entry point loads in :meth:`_check`."""

    def __init__(self, group: str, what: str, initial: dict[str, T] | None = None) -> None:
        self.group = group
        self.what = what  # "task", "backend": used in messages
        self._items: dict[str, T] = dict(initial or {})
        self._eps: dict[str, object] | None = None  # name -> EntryPoint, read once
        self._tried: set[str] = set()
        self._failed: dict[str, str] = {}  # entry point name -> why it did not load

    # --- registration ----------------------------------------------------------------------
    def register(self, name: str, obj: T, *, replace: bool = False) -> T:
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.what} name must be a non-empty string, got {name!r}")
        if name in self._items and not replace and self._items[name] is not obj:
            raise ValueError(f"{self.what} {name!r} is already registered; pass replace=True to redefine it")
        self._items[name] = obj
        self._tried.add(name)  # an explicit registration wins over an entry point of the same name
        return obj

    # --- entry points ----------------------------------------------------------------------
    def _entry_points(self) -> dict[str, object]:
        if self._eps is None:
            from importlib.metadata import entry_points

            eps: dict[str, object] = {}
            for ep in entry_points(group=self.group):
                eps.setdefault(ep.name, ep)  # first on sys.path wins, like imports
            self._eps = eps
        return self._eps

    def _load(self, name: str) -> None:
        if name in self._tried:
            return
        self._tried.add(name)
        ep = self._entry_points().get(name)
        if ep is None:
            return
        try:
            obj = self._check(name, ep.load())  # type: ignore[attr-defined]
        except Exception as exc:  # a broken plug-in must not break every other lookup
            why = f"{type(exc).__name__}: {exc}"
            self._failed[name] = why
            warnings.warn(f"{self.what} plug-in {name!r} ({ep.value}, entry point group {self.group}) "  # type: ignore[attr-defined]
                          f"failed to load: {why}", RuntimeWarning, stacklevel=3)
            return
        self._items[name] = obj

    def _load_all(self) -> None:
        for name in list(self._entry_points()):
            self._load(name)

    def _check(self, name: str, obj: object) -> T:
        """Validate (and possibly convert) what the entry point ``name`` loaded."""
        return obj  # type: ignore[return-value]

    def failure_note(self, name: str) -> str:
        """`` (its plug-in failed to load: ...)`` for a name whose entry point broke, else ``""``."""
        why = self._failed.get(name)
        return f" ({self.what} plug-in {name!r} failed to load: {why})" if why else ""

    def refresh(self) -> None:
        """Forget which entry points were read (after installing a plug-in in a running process)."""
        self._eps = None
        self._tried = set(self._items)
        self._failed.clear()

    # --- Mapping -----------------------------------------------------------------------------
    def __getitem__(self, name: str) -> T:
        if name not in self._items and isinstance(name, str):
            self._load(name)
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        self._load_all()
        return iter(list(self._items))

    def __len__(self) -> int:
        self._load_all()
        return len(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.group!r}, loaded={sorted(self._items)})"
