"""Repair pairs as multi-turn training rows, shaped like the evaluation's refinement conversation.

``distill eval --refine K`` (:mod:`distill.students.refine`) asks the student the task's prompt, and
when the solver rejects the program it appends the answer and the user turn
:func:`~distill.students.refine.feedback_message` (``"The solver reported: <diagnostic>. Fix the
program."``) and asks again. A repair pair trains exactly that second answer:

    user: the task prompt   assistant (weight 0): the broken answer
    user: the solver's message in the loop's words   assistant: the fixed program, fenced

The broken turn has ``"weight": 0`` (OpenAI fine-tuning's per-turn flag, honoured by
:mod:`distill.students.messages`): it is context, never learned. Two sources:

- ``distill augment``'s pairs (a valid program corrupted by one operator, kept only when the real
  solver rejects it, with its real message);
- with ``teacher_repairs``, the teacher's own rejected answers in the enriched file (their
  ``diagnostics``), fixed by the row's reference program: the "teacher repair" data, from the
  scripted teacher's mistakes instead of a second round of requests.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterable

from distill.data.jsonl import atomic_write_jsonl, iter_jsonl
from distill.prompting.prompts import core_prompt
from distill.students.refine import Check, feedback_message
from distill.verify.formal.augment import fenced

#: the style name repair rows carry (the router and ``distill posrate`` see it)
REPAIR_STYLE = "repair"


def repair_conversation(task: str, row: dict[str, Any], broken_answer: str, diagnostic: str,
                        fixed_program: str) -> list[dict[str, Any]]:
    """The four turns of one repair row (see the module docstring)."""
    feedback = feedback_message(Check(program="", valid=False, ok=False, diagnostic=diagnostic))
    return [{"role": "user", "content": core_prompt(task, row)},
            {"role": "assistant", "content": broken_answer, "weight": 0},
            {"role": "user", "content": feedback},
            {"role": "assistant", "content": fenced(task, fixed_program)}]


def _row(task: str, rid: str, src: dict[str, Any], broken: str, diagnostic: str, fixed: str) -> dict[str, Any]:
    out = {"id": rid, "question": src["question"], "gold_answer": fixed, "style": REPAIR_STYLE,
           "messages": repair_conversation(task, src, broken, diagnostic, fixed)}
    if src.get("facts"):
        out["facts"] = src["facts"]
    return out


def augment_rows(task: str, pairs: Iterable[dict[str, Any]], *, per_source: int | None = None,
                 seed: int = 0) -> list[dict[str, Any]]:
    """``distill augment`` pairs -> repair rows (the broken program as a bare fenced answer). With
    ``per_source``, at most that many pairs per source program (a seeded choice among its operators:
    every operator stays represented over the sources, and repair rows do not swamp the paths)."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        by_source.setdefault(str(p["id"]).rsplit("/", 1)[0], []).append(p)
    out = []
    for source, group in by_source.items():
        if per_source is not None and len(group) > per_source:
            group = random.Random(f"{seed}|{source}").sample(group, per_source)
        out += [_row(task, f"aug/{p['id']}", p, fenced(task, p["broken"]), p["error"], p["gold_answer"]) for p in group]
    return out


def teacher_rows(task: str, enriched: Path) -> list[dict[str, Any]]:
    """The teacher's rejected answers (``valid_flags`` false, with a diagnostic) -> repair rows fixed by
    the row's reference program."""
    out = []
    for _, row in iter_jsonl(enriched):
        flags, diags = row.get("valid_flags") or [], row.get("diagnostics") or []
        for i, (resp, valid, diag) in enumerate(zip(row.get("responses") or [], flags, diags)):
            if not valid and diag and isinstance(resp, str) and resp.strip():
                out.append(_row(task, f"teacher/{row['id']}/{i}", row, resp, diag, row["gold_answer"]))
    return out


def write_repair_file(path: Path, rows: list[dict[str, Any]]) -> int:
    """Write the repair rows (a ``*.correct.jsonl`` beside the teacher's, so training picks it up)."""
    atomic_write_jsonl(path, rows)
    return len(rows)


def conversation_texts(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every turn's text (for the students' tokenizer corpus)."""
    return [m["content"] for r in rows for m in r["messages"]]
