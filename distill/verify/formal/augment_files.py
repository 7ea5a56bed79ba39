"""``distill augment`` on files: read program rows, write repair pairs or ASP renamed variants.

Kept apart from :mod:`distill.verify.formal.augment` (the operators and pairs) and
:mod:`distill.verify.formal.repair` (the template repair) because it uses both: reading the rows
(a source file, or a ``*.correct.jsonl`` whose questions come from the source rows), writing the
output atomically, and the optional template-repair baseline.
"""

from __future__ import annotations

from typing import Any

from distill.verify.formal import FORMAL_TIMEOUT_S, LANGUAGES
from distill.verify.formal.augment import Report, make_rename_rows, make_repair_pairs

KINDS = ("repair", "rename", "equiv", "noise", "steps")


def read_program_rows(path, task: str, *, source=None) -> list[dict[str, Any]]:
    """Rows of a source file (``id``, ``question``, ``gold_answer``) or of a ``*.correct.jsonl`` file,
    whose rows carry no question: it comes from ``source`` (the source rows, joined by id). A row
    without a question names its file and line."""
    from distill.data.jsonl import DataError, is_output_file, iter_rows

    correct = is_output_file(path)
    questions: dict[str, str] = {}
    if source is not None:
        questions = {str(r["id"]): r["question"] for _, r in iter_rows(source, task)}
    rows = []
    for lineno, row in iter_rows(path, task, question=not correct):
        if not row.get("question"):
            q = questions.get(str(row["id"]))
            if q is None:
                hint = "pass --source with the source rows" if source is None else f"id not found in {source}"
                raise DataError(path, lineno, f"missing required field 'question' ({hint})")
            row = {**row, "question": q}
        if correct and "gold_answer" not in row:
            raise DataError(path, lineno, f"missing required field 'gold_answer' for task {task!r}")
        rows.append(row)
    return rows


def augment_file(task: str, input, out, *, seed: int = 0, kind: str = "repair", source=None,
                 workers: int = 2, timeout: float = FORMAL_TIMEOUT_S, baseline: bool = False,
                 progress: bool = False, test_out=None, test_share: float = 0.0) -> Report:
    """``distill augment``: read ``input``, write the rows of ``kind`` to ``out`` atomically; returns the
    report (with ``baseline``, also how many broken programs
    :func:`distill.verify.formal.repair.template_repair` fixes). Kinds: ``repair`` pairs, ASP
    ``rename``d variants, ``equiv`` (SMT/DOT equivalence-preserving variants), ``noise`` (instruction
    noise), ``steps`` (ASP multi-turn rows; ``test_share`` of the problems go to ``test_out``)."""
    from distill.data.jsonl import atomic_write_jsonl
    from distill.data.tasks import get_task, is_formal
    from distill.errors import ConfigError

    spec = get_task(task)
    if not is_formal(spec):
        raise ConfigError(f"--task {task!r} is not a formal-language task (its kind is {spec.kind!r}); "
                          f"use one of {', '.join(LANGUAGES)}")
    if kind not in KINDS:
        raise ConfigError(f"--kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind in ("rename", "steps") and spec.kind != "asp":
        raise ConfigError(f"--kind {kind} is for ASP programs; task {task!r} is {spec.kind!r} (use --kind repair)")
    if kind == "equiv" and spec.kind == "asp":
        raise ConfigError("--kind equiv is for SMT and DOT; ASP's equivalence-preserving variants are --kind rename")
    if not 0.0 <= test_share < 1.0:
        raise ConfigError(f"--test-share {test_share}: use a share in [0, 1)")
    if kind == "steps" and test_share > 0 and test_out is None:
        raise ConfigError("--test-share needs --test-out (the file the held-out problems' rows go to)")
    from distill.data.commit import check_writable

    for target in (out, test_out):
        if target is not None:
            check_writable(target)
    rows = read_program_rows(input, task, source=source)
    if kind in ("equiv", "noise", "steps"):
        from distill.verify.formal import augment_variants as av

        if kind == "steps":
            split, report = av.make_step_rows(rows, seed, test_share=test_share, timeout=timeout)
            items = split["train"]
            if test_out is not None:
                atomic_write_jsonl(test_out, split["test"])
        elif kind == "equiv":
            items, report = av.make_equiv_rows(spec.kind, rows, seed, workers=workers, timeout=timeout,
                                               progress=progress)
        else:
            items, report = av.make_noise_rows(spec.kind, rows)
    elif kind == "rename":
        items, report = make_rename_rows(rows, seed, workers=workers, timeout=timeout, progress=progress)
    else:
        items, report = make_repair_pairs(spec.kind, rows, seed, workers=workers, timeout=timeout,
                                          progress=progress)
    atomic_write_jsonl(out, items)
    report.written = len(items)
    if baseline and kind == "repair":
        from distill.verify.formal.repair import fix_rate

        report.template_fixed = fix_rate(spec.kind, items, timeout=timeout)
    return report
