"""What ``--repair-rounds`` records (:mod:`distill.prompting.repair`): a path's trail and its repair examples.

``repair_trails`` (parallel to ``responses``): every round's ``program``, ``diagnostic`` and ``valid``
flag, round 0 being the first answer (``[]`` for a path never sent back). Repair examples: each step
from a rejected program to a valid one, in the row format of ``distill augment --kind repair``
(:func:`distill.verify.formal.augment.repair_messages`), with operator :data:`REPAIR_OPERATOR`.
"""

from __future__ import annotations

from typing import Any

from distill.prompting.engine import Job

#: the ``operator`` of a repair example written from a teacher's repair (augment's are the corruptions)
REPAIR_OPERATOR = "teacher_repair"


def _program(language: str, job: Job) -> str:
    from distill.verify.formal import extract_program

    return extract_program(language, job.completion.text)


def trail(job: Job, language: str) -> list[dict[str, Any]]:
    """The path's rounds (``[]`` if it was never sent back): program, diagnostic, valid (+ error)."""
    if not job.repairs:
        return []
    out = []
    for rnd, step in enumerate([job, *job.repairs]):
        if step.ok:
            v = step.verdict
            out.append({"round": rnd, "program": _program(language, step),
                        "diagnostic": None if v is None else v.diagnostic, "valid": bool(v is not None and v.valid)})
        else:
            out.append({"round": rnd, "program": None, "diagnostic": None, "valid": False, "error": step.error})
    return out


def repair_examples(row: dict[str, Any], jobs: list[Job], language: str) -> list[dict[str, Any]]:
    """Repair examples of one row: each (rejected program, its error, the valid program that followed)."""
    from distill.verify.formal.augment import repair_messages

    question = row.get("question") or ""
    out = []
    for i, job in enumerate(jobs):
        steps = [s for s in [job, *job.repairs] if s.ok]
        for rnd, (prev, nxt) in enumerate(zip(steps, steps[1:]), 1):
            broken, fixed = _program(language, prev), _program(language, nxt)
            if prev.verdict.valid or not nxt.verdict.valid or not broken.strip():
                continue
            error = (prev.verdict.diagnostic or "").strip()
            ex = {"id": f"{row['id']}#{i}/repair{rnd}", "question": question, "broken": broken, "error": error,
                  "gold_answer": fixed, "operator": REPAIR_OPERATOR,
                  "messages": repair_messages(language, question, broken, error, fixed),
                  "round": rnd}
            if row.get("facts"):
                ex["facts"] = row["facts"]
            out.append(ex)
    return out
