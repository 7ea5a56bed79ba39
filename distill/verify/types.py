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
    """One scored path: the extracted prediction and whether it matches the gold answer."""

    pred: str
    correct: bool
