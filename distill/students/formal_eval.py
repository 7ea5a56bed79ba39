"""The formal-task extras of one student's evaluation: template repair and solver-in-the-loop refinement.

Each scored answer record (``text``, ``pred``, ``correct``, ``valid``, ``diagnostic``, ``timed_out``:
the *distilled* row) gains, for ``smt``/``asp``/``dot``:

- ``initial_valid``, ``final_valid``, ``final_correct``, ``final_timed_out``, ``iterations``,
  ``refine_stop`` and the ``trail`` (one step per round: ``round, text, program, valid, ok,
  diagnostic, timed_out``): :func:`distill.students.refine.refine_loop` with ``rounds`` rounds (0: the
  first answer is final, ``refine_stop`` ``off``, no solver call repeated). The final program is scored against the reference only *after* the loop.
- with ``template_repair``: ``repair`` = ``{changed, valid, correct, timed_out}``, the first answer's
  program after :func:`distill.verify.formal.repair.template_repair`, scored by the same verifier.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from distill.errors import ConfigError
from distill.students.refine import REFINE_ON, Check, oracle_check, refine_loop, validity_check


def check_formal_options(task: str, *, refine: int, refine_on: str, template_repair: bool) -> bool:
    """Validate the options up front; True when the task is a formal one."""
    from distill.data.tasks import FORMAL_KINDS
    from distill.verify.core import kind_of

    formal = kind_of(task) in FORMAL_KINDS
    if refine < 0:
        raise ConfigError(f"--refine {refine}: the number of rounds must be >= 0")
    if refine_on not in REFINE_ON:
        raise ConfigError(f"--refine-on {refine_on!r}: one of {', '.join(REFINE_ON)}")
    if (refine or template_repair) and not formal:
        flag = "--refine" if refine else "--template-repair"
        raise ConfigError(f"{flag}: only for the formal tasks ({', '.join(FORMAL_KINDS)}); task {task!r} has "
                          f"kind {kind_of(task)!r}")
    return formal


def repaired_verdict(task: str, rec: dict[str, Any], row: dict[str, Any], scorer: Callable) -> dict[str, Any]:
    """The record's program after template repair, scored (unchanged program: the record's verdict)."""
    from distill.verify.core import kind_of
    from distill.verify.formal import extract_program
    from distill.verify.formal.augment import fenced
    from distill.verify.formal.repair import template_repair

    language = kind_of(task)
    program = extract_program(language, rec["text"])
    fixed = template_repair(language, program, facts=row.get("facts")) if program else program
    if fixed == program:
        return {"changed": False, "valid": rec["valid"], "correct": rec["correct"], "timed_out": rec["timed_out"]}
    v = scorer(task, fenced(language, fixed), row)
    return {"changed": True, "valid": bool(v.valid), "correct": bool(v.correct),
            "timed_out": bool(getattr(v, "timed_out", False))}


def add_formal_fields(task: str, recs: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], *,
                      questions: Sequence[str], generate, rounds: int, refine_on: str, template_repair: bool,
                      scorer: Callable) -> None:
    """Fill each record (``recs[j]`` answers ``rows[j]``, asked as ``questions[j]``) in place."""
    from distill.verify.core import kind_of

    language = kind_of(task)
    if template_repair:
        for rec, row in zip(recs, rows):
            rec["repair"] = repaired_verdict(task, rec, row, scorer)
    if rounds == 0:  # nothing to refine: the first verdicts stand (no solver call is repeated)
        def check(i: int, text: str) -> Check:
            r = recs[i]
            return Check(str(r.get("pred") or ""), r["valid"], True, r.get("diagnostic"), r["timed_out"])
    elif refine_on == "wrong":
        check = oracle_check(task, rows, scorer)
    else:  # reference-free: the facts are part of the prompt, the rows never reach the loop
        check = validity_check(language, [row.get("facts") for row in rows])
    outcomes = refine_loop([[{"role": "user", "content": q}] for q in questions], generate, check,
                           rounds=rounds, first=[rec["text"] for rec in recs])
    for rec, row, o in zip(recs, rows, outcomes):
        rec["initial_valid"] = rec["valid"]
        if o.best == 0:
            final = {"valid": rec["valid"], "correct": rec["correct"], "timed_out": rec["timed_out"]}
        else:  # scored against the reference only now, after the loop
            v = scorer(task, o.best_text, row)
            final = {"valid": bool(v.valid), "correct": bool(v.correct),
                     "timed_out": bool(getattr(v, "timed_out", False))}
        rec.update(final_valid=final["valid"], final_correct=final["correct"],
                   final_timed_out=final["timed_out"] or any(s["timed_out"] for s in o.trail),
                   iterations=o.iterations, refine_stop=o.stop if rounds else "off", trail=o.trail)
