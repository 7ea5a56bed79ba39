"""The verdict type shared by the formal-language verifiers (imports nothing else of distill, so each
language module can import it without an import cycle through the package)."""

from __future__ import annotations

from dataclasses import dataclass

#: seconds one solver call may take (a whole verification may make a few calls)
FORMAL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FormalVerdict:
    """One program's verdict. ``status``: what the solver concluded (SMT: ``sat``/``unsat``/``unknown``;
    ASP: ``sat``/``unsat``; DOT: ``digraph``/``graph``), ``None`` when invalid; ``timed_out``: a
    solver call hit its limit (counted and reported by the caller)."""

    valid: bool
    correct: bool
    diagnostic: str | None = None
    status: str | None = None
    timed_out: bool = False

    def __post_init__(self) -> None:
        if self.correct and not self.valid:
            raise ValueError("a correct program must be valid")
