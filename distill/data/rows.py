"""Row validation per task: the one validator of ``prompt``, ``regen-correct``, ``judge`` and training.

:func:`validate_row` checks (and canonicalises) one parsed row for its task; :func:`iter_rows` and
:func:`read_rows` read a task file through :func:`distill.data.reader.iter_jsonl` and validate every
row, failing with a :class:`~distill.data.reader.DataError` that names the file, line and field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from distill.data.reader import DataError, iter_jsonl
from distill.data.tasks import (
    GOLD_WORDS, NON_TEXT_FIELDS, PATH_FIELDS, TASKS, TaskSpec, get_task, is_formal, question_fields,
)


def _type_name(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # nan, inf
    return {dict: "an object", list: "a list", bool: "a boolean", str: "a string", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _canonical_number(value: int | float) -> str:
    """A JSON number gold as the string a dataset would write: 18 -> "18", 2.50 -> "2.5", 1e-05 -> "0.00001"."""
    if isinstance(value, int):
        return str(value)
    s = format(Decimal(repr(value)), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def _check_gold(value: Any, row: dict[str, Any], spec: TaskSpec, where: tuple) -> Any:
    """The gold answer, validated for the task's kind (and canonicalised: see :func:`validate_row`)."""
    what = f"for task {spec.name!r} ({spec.kind})"
    if spec.kind == "math":
        if isinstance(value, str):
            if not value.strip():
                raise DataError(*where, f"field 'gold_answer' is blank {what}")
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return _canonical_number(value)
        if isinstance(value, float) and math.isfinite(value):
            return _canonical_number(value)
        raise DataError(*where, f"field 'gold_answer' must be a string or a finite number {what}, got "
                                f"{_type_name(value)} (write a tuple, list or set answer as one string, e.g. \"(1, 2)\")")
    if spec.kind == "mcq":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise DataError(*where, f"field 'gold_answer' must be one of the choice labels {what}, got {_type_name(value)}")
        labels = (row.get("choices") or {}).get("label") if isinstance(row.get("choices"), dict) else None
        if labels is not None:
            bare = value.strip().strip("()").strip().casefold()  # "(B)" and " b " name option B, as the verifier reads them
            if bare not in {lab.casefold() for lab in labels}:
                raise DataError(*where, f"field 'gold_answer' {value!r} is not one of the choice labels "
                                        f"{', '.join(labels)}")
        return value
    if is_formal(spec):
        if not isinstance(value, str) or not value.strip():
            shown = repr(value) if isinstance(value, str) else _type_name(value)
            raise DataError(*where, f"field 'gold_answer' must be the reference program as a non-empty string "
                                    f"{what}, got {shown}")
        return value
    words = GOLD_WORDS[spec.kind]
    if spec.kind == "yesno" and isinstance(value, bool):
        return value  # StrategyQA's own answers are booleans; the verifier reads true/false as yes/no
    if not isinstance(value, str) or value.strip().casefold() not in words:
        shown = repr(value) if isinstance(value, str) else _type_name(value)
        expected = "Yes or No" if spec.kind == "yesno" else "entailment, neutral or contradiction"
        raise DataError(*where, f"field 'gold_answer' must be {expected} {what}, got {shown}")
    return value


def _check_choices(value: Any, spec: TaskSpec, where: tuple) -> None:
    if spec.kind == "mcq":
        if not (isinstance(value, dict) and isinstance(value.get("label"), list) and isinstance(value.get("text"), list)
                and len(value["label"]) == len(value["text"])):
            raise DataError(*where, "field 'choices' must be {label: [...], text: [...]} of equal length")
        labels, texts = value["label"], value["text"]
        if not labels:
            raise DataError(*where, "field 'choices' has no options (empty label and text lists)")
        for i, lab in enumerate(labels):
            if not isinstance(lab, str) or not lab.strip():
                raise DataError(*where, f"field 'choices.label'[{i}] must be a non-empty string, got "
                                        f"{repr(lab) if isinstance(lab, str) else _type_name(lab)}")
        if len({lab.casefold() for lab in labels}) != len(labels):
            raise DataError(*where, f"field 'choices.label' repeats a label: {', '.join(labels)}")
        for i, txt in enumerate(texts):
            if not isinstance(txt, str):
                raise DataError(*where, f"field 'choices.text'[{i}] must be a string, got {_type_name(txt)}")
    elif value is not None:  # math rows may carry a plain list of text options (TabMWP multiple choice)
        if not isinstance(value, list):
            raise DataError(*where, f"field 'choices' must be a list of option strings (or null) for task "
                                    f"{spec.name!r}, got {_type_name(value)}")
        for i, txt in enumerate(value):
            if not isinstance(txt, str):
                raise DataError(*where, f"field 'choices'[{i}] must be a string, got {_type_name(txt)}")


def _missing(row: dict[str, Any], field: str) -> bool:
    return field not in row or row[field] is None or row[field] == ""


def has_question_fields(row: dict[str, Any], spec: TaskSpec) -> bool:
    """Does a correct/judged row carry everything its question is built from (as research files do)?"""
    return all(not _missing(row, f) for f in question_fields(spec))


def validate_row(row: dict[str, Any], spec: TaskSpec, path: str | os.PathLike, lineno: int,
                 *, enriched: bool = False, question: bool = True) -> None:
    """Check a row for its task: the one validator of ``prompt``, ``regen-correct``, ``judge`` and training.

    ``question=False`` is for correct/judged rows, which need only an ``id`` (their question may come from
    the source rows); every field they do carry is checked as for a source row. ``enriched`` also checks
    the path lists (parallel, responses strings) and a ``task`` field against ``spec``.

    Per field: ``id`` a non-blank string or an integer; question text fields non-blank strings;
    ``choices`` for ``mcq`` ``{label: [...], text: [...]}`` with distinct non-empty string labels and
    string texts (for ``math``, null or a list of strings); ``gold_answer`` per kind: ``math`` a
    string or a finite JSON number, which is replaced by its canonical string (``18``, ``2.5``) so
    that every stage compares text; ``mcq`` one of the labels (an integer label is made a string);
    ``yesno`` yes/no/true/false or a boolean; ``nli`` a label word (:data:`GOLD_WORDS`); ``smt``,
    ``asp``, ``dot`` the reference program, a non-blank string (``facts``, if given, a string). NaN,
    lists and objects are never gold answers.
    """
    where = (path, lineno)
    for field in spec.required if question else ("id",):
        if _missing(row, field):
            raise DataError(*where, f"missing required field {field!r} for task {spec.name!r}")
    rid = row["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or (isinstance(rid, str) and not rid.strip()):
        raise DataError(*where, f"field 'id' must be a non-blank string or an integer, got "
                                f"{repr(rid) if isinstance(rid, str) else _type_name(rid)}")
    for field in spec.required:
        if field in NON_TEXT_FIELDS or _missing(row, field):
            continue
        val = row[field]
        if not isinstance(val, str) or not val.strip():
            raise DataError(*where, f"field {field!r} must be a non-blank string, got "
                                    f"{repr(val) if isinstance(val, str) else _type_name(val)}")
    if ("choices" in spec.required and not _missing(row, "choices")) or (spec.kind == "math" and "choices" in row):
        _check_choices(row["choices"], spec, where)
    if not _missing(row, "gold_answer"):
        row["gold_answer"] = _check_gold(row["gold_answer"], row, spec, where)
    if is_formal(spec) and row.get("facts") is not None and not isinstance(row["facts"], str):
        # an instance appended to both the candidate and the reference program before solving
        raise DataError(*where, f"field 'facts' must be a string (program text appended before solving) for "
                                f"task {spec.name!r}, got {_type_name(row['facts'])}")
    if enriched:
        task = row.get("task")
        if task is not None and task != spec.name:
            if task not in TASKS:
                raise DataError(*where, f"field 'task': unknown task {task!r}")
            raise DataError(*where, f"field 'task' is {task!r} but the file is scored as {spec.name!r}")
        n = None
        for field in PATH_FIELDS:
            if field == "preds" or field == "correct_flags":
                continue  # recomputed by the verifiers; may be absent in hand-made files
            val = row.get(field)
            if not isinstance(val, list):
                raise DataError(*where, f"missing or non-list path field {field!r}")
            if n is None:
                n = len(val)
            elif len(val) != n:
                raise DataError(*where, f"path field {field!r} has {len(val)} entries, expected {n}")
        for i, resp in enumerate(row["responses"]):
            if not isinstance(resp, str):
                raise DataError(*where, f"field 'responses'[{i}] must be a string, got {_type_name(resp)}")


def iter_rows(path: str | os.PathLike, task: str | TaskSpec, *, enriched: bool = False,
              question: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, row)`` of a task file, each checked by :func:`validate_row`; an id seen twice in
    one file is an error (every stage keys rows by ``str(id)``, so ``1`` and ``"1"`` are the same id)."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    seen: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        validate_row(row, spec, path, lineno, enriched=enriched, question=question)
        key = str(row["id"])
        if key in seen:
            raise DataError(path, lineno, f"field 'id': duplicate id {row['id']!r} (first on line {seen[key]})")
        seen[key] = lineno
        yield lineno, row


def read_rows(path: str | os.PathLike, task: str | TaskSpec, *, enriched: bool = False,
              question: bool = True) -> list[dict[str, Any]]:
    """Read and validate every row of a task file. Raises :class:`DataError` on the first bad line."""
    return [row for _, row in iter_rows(path, task, enriched=enriched, question=question)]
