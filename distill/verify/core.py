"""``score`` and ``extract_answer``: one entry point per path, dispatching on the task's kind.

The prediction pipeline is the same for every kind (see ``distill/verify/__init__.py``):
explicit final answer in the prose -> value of a solver block (SMT-LIB2 / ASP) -> the kind's
loose fallback -> ``N/A``. A DOT block that Graphviz rejects makes the path incorrect.

Formal kinds (``smt``, ``asp``, ``dot``) answer with a whole program instead: the prediction is the
program (:func:`distill.verify.formal.extract_program`), and the real solver decides whether it is
valid and means the same as the reference program in ``gold_answer``
(:func:`distill.verify.formal.verify_program`); the verdict carries ``valid`` and ``diagnostic``.
"""

from __future__ import annotations

from typing import Any

from distill.data.tasks import FORMAL_KINDS, KINDS, TASKS, UnknownTaskError
from distill.verify import choice, formal, mathans, solvers
from distill.verify.types import HEDGED, NA, Verdict


def kind_of(task: str) -> str:
    """A task name from :data:`distill.data.tasks.TASKS` (or a kind name itself) -> its verifier kind."""
    spec = TASKS.get(task)
    if spec is not None:
        return spec.kind
    if task in KINDS:
        return task
    raise UnknownTaskError(
        f"unknown task {task!r}; valid tasks: {', '.join(sorted(TASKS))} (or a kind: {', '.join(KINDS)})"
    )


def _text_choices(row: dict[str, Any] | None) -> bool:
    """Math-kind rows with a plain list of text options (TabMWP multi-choice) are matched as text."""
    return bool(row) and isinstance(row.get("choices"), list) and bool(row["choices"])


def _extract_text(kind: str, text: str, row: dict[str, Any] | None, explicit_only: bool) -> str:
    if kind == "math":
        if _text_choices(row):
            return choice.extract_choice_text(text, row, explicit_only=explicit_only)
        got = mathans.extract_explicit(text) if explicit_only else (
            mathans.extract_explicit(text) or mathans.extract_fallback(text))
        if got == HEDGED:
            return HEDGED
        return mathans.normalize(got) if got else NA
    if kind == "mcq":
        return choice.extract_mcq(text, row, explicit_only=explicit_only)
    if kind == "yesno":
        return choice.extract_yesno(text, row, explicit_only=explicit_only)
    return choice.extract_nli(text, row, explicit_only=explicit_only)


def _from_solver(kind: str, value: str, row: dict[str, Any] | None) -> str:
    """Map a solver's raw value into the task's answer vocabulary."""
    if kind == "math":
        if _text_choices(row):
            return choice.extract_choice_text(f"Answer: {value}", row, explicit_only=True)
        return mathans.normalize(value)
    if kind == "yesno" and value.casefold() in ("true", "false", "yes", "no"):
        return choice.YESNO_WORDS[value.casefold()]
    if kind == "nli" and value.casefold() in choice.NLI_WORDS:
        return choice.NLI_WORDS[value.casefold()]
    return _extract_text(kind, f"Answer: {value}", row, explicit_only=True)


def no_program_diagnostic(kind: str, response: Any) -> str:
    """Why a formal-kind response has no program to run (the ``diagnostic`` of its verdict)."""
    if not isinstance(response, str) or not response.strip():
        return "empty response: no program"
    tags = "/".join(f"```{t}" for t in formal.FENCES[kind])
    return f"no {tags} block in the response (its fenced blocks are in other languages)"


def formal_verdict(kind: str, response: str, row: dict[str, Any], *,
                   solver_timeout: float | None = None) -> Verdict:
    """Score a program-answer path: the last block in the kind's language (else the bare response),
    checked by the real solver against ``row["gold_answer"]`` (+ ``row["facts"]`` for ASP).
    ``pred`` is the program itself; ``correct`` implies ``valid``."""
    program = formal.extract_program(kind, response if isinstance(response, str) else "")
    if not program:
        return Verdict(NA, False, valid=False, diagnostic=no_program_diagnostic(kind, response))
    timeout = formal.FORMAL_TIMEOUT_S if solver_timeout is None else solver_timeout
    fv = formal.verify_program(kind, program, str(row["gold_answer"]), row, timeout=timeout)
    valid = bool(fv.valid)
    return Verdict(program, bool(fv.correct) and valid, valid=valid, diagnostic=fv.diagnostic,
                   timed_out=bool(fv.timed_out))


def extract_answer(task: str, response: str, row: dict | None = None,
                   budget: solvers.Budget | None = None) -> str:
    """The path's prediction in the task's vocabulary, or ``"N/A"`` if nothing is extractable.

    ``budget`` bounds the solver runs of this response (:class:`distill.verify.solvers.Budget`).
    For a formal kind the prediction is the candidate program (no solver is run here).
    """
    kind = kind_of(task)
    if not isinstance(response, str) or not response.strip():
        return NA
    if kind in FORMAL_KINDS:
        return formal.extract_program(kind, response) or NA
    pred = _extract_text(kind, response, row, explicit_only=True)
    if pred == HEDGED:  # "the answer is A or D": wrong whatever else the response holds
        return NA
    if pred != NA:
        return pred
    value = solvers.solver_prediction(response, budget=budget)
    if value is not None:
        pred = _from_solver(kind, value, row)
        if pred not in (NA, HEDGED):
            return pred
    pred = _extract_text(kind, response, row, explicit_only=False)
    return NA if pred == HEDGED else pred


def is_correct(task: str, pred: str, row: dict[str, Any]) -> bool:
    """Does an extracted prediction match ``row["gold_answer"]``?"""
    if pred == NA:
        return False
    kind = kind_of(task)
    if kind in FORMAL_KINDS:
        return formal.verify_program(kind, pred, str(row["gold_answer"]), row).correct
    if kind == "math":
        if _text_choices(row):
            return choice.choice_text_correct(pred, row)
        return mathans.equivalent(str(row["gold_answer"]), pred)
    if kind == "mcq":
        return choice.mcq_correct(pred, row)
    if kind == "yesno":
        return choice.yesno_correct(pred, row)
    return choice.nli_correct(pred, row)


def score(task: str, response: str, row: dict, *, solver_timeout: float | None = None) -> Verdict:
    """Extract the path's answer and check it against ``row["gold_answer"]`` (+ ``choices`` for mcq).

    All solver runs of the response (answer blocks and DOT checks) share one budget,
    :data:`distill.verify.solvers.RESPONSE_SOLVER_BUDGET_S` seconds, however many blocks it has.
    Formal kinds: :func:`formal_verdict`; ``solver_timeout`` caps each of its solver calls
    (default :data:`distill.verify.formal.FORMAL_TIMEOUT_S`).
    """
    kind = kind_of(task)
    if kind in FORMAL_KINDS:
        return formal_verdict(kind, response, row, solver_timeout=solver_timeout)
    budget = solvers.Budget()
    pred = extract_answer(task, response, row, budget)
    correct = is_correct(task, pred, row)
    if correct and "```" in response and not solvers.structure_ok(response, budget=budget):
        correct = False
    return Verdict(pred, correct)
