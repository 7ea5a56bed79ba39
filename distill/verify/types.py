"""Result types shared by the verifiers (kept import-light: no SymPy, no solvers)."""

from __future__ import annotations

from dataclasses import dataclass

#: The prediction string for "nothing extractable". A verdict with this pred is never correct.
NA = "N/A"
#: Internal marker of a hedged final answer ("the answer is A or D"): scored as ``NA`` at once,
#: without falling back to solver blocks or loose mentions (a hedge is never a correct answer).
HEDGED = "<hedged>"


@dataclass(frozen=True)
class Verdict:
    """One scored path: the extracted prediction and whether it matches the gold answer.

    Formal kinds (``smt``, ``asp``, ``dot``) also say whether the solver accepted the program
    (``valid``; ``correct`` implies it) and its first error (``diagnostic``), and whether a solver
    call hit its limit (``timed_out``). For the other kinds ``valid`` and ``diagnostic`` are ``None``.
    """

    pred: str
    correct: bool
    valid: bool | None = None
    diagnostic: str | None = None
    timed_out: bool = False

    def __post_init__(self) -> None:
        if self.correct and self.valid is False:
            raise ValueError("a correct path must be valid")
