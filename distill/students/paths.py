"""Reading the training paths and the test rows from the research layout.

Why one example per *path*: the router decides, path by path, which student learns it,
so every verified path of a sample is its own example (the research code kept one).
``<root>/<task>/train/`` holds the teacher's outputs (``*.correct.jsonl``, ``*.judged.jsonl``,
``*.enriched.jsonl``); correct/judged rows that hold only ids and paths get their question from the
source rows of the same folder, rows that carry their question fields are their own source.
``<root>/<task>/test/`` holds the source rows to evaluate on. Tokenising the paths is
:mod:`distill.students.data`'s job.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from distill.data.jsonl import DataError, has_question_fields, is_output_file, iter_rows, read_rows, validate_row
from distill.data.tasks import get_task, question_fields
from distill.errors import ConfigError
from distill.students.data import question_text


# ------------------------------------------------------------------------------------ reading
def _source_rows(folder: Path, task: str) -> dict[str, dict[str, Any]]:
    """id -> source row from the non-output ``*.jsonl`` and the ``*.enriched.jsonl`` of a folder."""
    by_id: dict[str, dict[str, Any]] = {}
    spec = get_task(task)
    files = sorted(folder.glob("*.enriched.jsonl")) + sorted(p for p in folder.glob("*.jsonl") if not is_output_file(p))
    for f in files:
        for _, row in iter_rows(f, spec):
            by_id.setdefault(str(row["id"]), row)
    return by_id


def _messages_path(row: dict[str, Any], *, file: str, lineno: int) -> dict[str, Any]:
    """The one path of a row that carries ``messages`` (repair pairs, multi-turn step-by-step rows)."""
    from distill.students.messages import check_messages, messages_texts

    if row.get("responses") is not None:
        raise DataError(file, lineno, "a row carries either 'messages' (one multi-turn example) or 'responses' "
                                      "(reasoning paths), not both")
    messages = check_messages(row["messages"], file, lineno)
    question, response = messages_texts(messages)
    style = row.get("style")
    return {"id": str(row["id"]), "path_idx": 0, "style": style if isinstance(style, str) and style else "messages",
            "correct": True, "question_text": question, "response": response, "messages": messages}


def _paths_from_row(row: dict[str, Any], src: dict[str, Any], task: str, *, only_correct: bool,
                    file: str, lineno: int) -> list[dict[str, Any]]:
    responses = row.get("responses")
    if not isinstance(responses, list):
        raise DataError(file, lineno, "missing required field 'responses'" if responses is None else
                        f"field 'responses' must be a list (one answer per path), got {type(responses).__name__}")
    n = len(responses)
    for field in ("styles", "path_idx", "correct_flags"):
        if row.get(field) is not None and not isinstance(row[field], list):
            raise DataError(file, lineno, f"field {field!r} must be a list (one entry per path), got "
                                          f"{type(row[field]).__name__}")
    styles = row.get("styles") or [None] * n
    flags = row.get("correct_flags")
    idx = row.get("path_idx") or list(range(n))
    if len(styles) != n or len(idx) != n or (flags is not None and len(flags) != n):
        raise DataError(file, lineno, f"path fields styles/path_idx/correct_flags must have {n} entries like 'responses'")
    for i, (style, j) in enumerate(zip(styles, idx)):
        if style is not None and not isinstance(style, str):
            raise DataError(file, lineno, f"field 'styles'[{i}] must be a string, got {type(style).__name__}")
        if isinstance(j, bool) or not isinstance(j, int) or j < 0:
            raise DataError(file, lineno, f"field 'path_idx'[{i}] must be a path index (an integer >= 0), got {j!r}")
    q = question_text(task, src)
    out = []
    for i, resp in enumerate(responses):
        correct = bool(flags[i]) if flags is not None else (True if only_correct else None)
        if only_correct and flags is not None and not flags[i]:
            continue
        if not isinstance(resp, str) or not resp.strip():
            continue
        out.append({"id": str(row["id"]), "path_idx": int(idx[i]), "style": styles[i], "correct": correct,
                    "question_text": q, "response": resp})
    return out


def _kind(path: Path) -> str:
    name = path.name
    if name.endswith(".enriched.jsonl"):
        return "enriched"
    if name.endswith(".judged.jsonl"):
        return "judged"
    if name.endswith(".correct.jsonl"):
        return "correct"
    if name.endswith(".jsonl") and (not is_output_file(path) or name.endswith(".repairs.jsonl")):
        return "messages"  # (a *.repairs.jsonl of `distill prompt --repair-rounds` is messages rows too)
    raise ConfigError(f"{path}: a training file must be *.correct.jsonl, *.judged.jsonl, *.enriched.jsonl or a "
                      "*.jsonl of messages rows")


def train_files(cfg) -> list[Path]:
    """The training files the config selects: ``--train_file`` (one file, or several joined by commas),
    or the research layout glob."""
    if cfg.train_file:
        files = [Path(p.strip()) for p in str(cfg.train_file).split(",") if p.strip()]
        if not files:
            raise ConfigError(f"--train_file {cfg.train_file!r}: names no file")
        for p in files:
            if not p.is_file():
                raise ConfigError(f"--train_file {p}: no such file")
            _kind(p)
        return files
    folder = Path(cfg.data_root) / cfg.task / "train"
    suffix = "judged" if cfg.judged_only else ("correct" if cfg.is_quality else "enriched")
    files = sorted(Path(p) for p in glob.glob(str(folder / f"*.{suffix}.jsonl")))
    if not files:
        hint = "run `distill judge`" if suffix == "judged" else "run `distill prompt`"
        raise ConfigError(f"no training data for task {cfg.task!r}: {folder}/*.{suffix}.jsonl matched nothing "
                          f"({hint}, or pass --train_file)")
    return files


def load_train_paths(cfg) -> list[dict[str, Any]]:
    """Every training path as ``{id, path_idx, style, correct, question_text, response}``.

    A correct/judged row that carries its own question fields (as the research code's files do:
    ``question``, ``choices``, ``table``, ``premise``...) is its own source; one that holds only ids
    and paths gets its question from the source rows (non-output ``*.jsonl`` or ``*.enriched.jsonl``)
    in the same folder. A row that carries ``messages`` (system / user / assistant turns: the repair
    pairs of ``distill augment``, multi-turn step-by-step rows) is one example with that ``messages``
    list (its ``response`` is the assistant turns' text, :func:`distill.students.messages.messages_texts`),
    in a correct/judged file or in a plain ``*.jsonl`` given as ``--train_file``, where every row must
    carry ``messages``. Every row goes through the one row validator
    (:func:`distill.data.jsonl.validate_row`). ``sample_size`` keeps the first N rows (all of their paths).
    """
    examples: list[dict[str, Any]] = []
    rows_seen = 0
    spec = get_task(cfg.task)
    for f in train_files(cfg):
        kind = _kind(f)
        sources = _source_rows(f.parent, cfg.task) if kind in ("correct", "judged") else {}
        for lineno, row in iter_rows(f, spec, enriched=(kind == "enriched"), question=(kind == "enriched")):
            if cfg.sample_size is not None and rows_seen >= cfg.sample_size:
                break
            if kind == "messages" or row.get("messages") is not None:
                if kind == "messages" and row.get("messages") is None:
                    raise DataError(f, lineno, "missing required field 'messages' (a plain *.jsonl training file "
                                               "holds messages rows; name reasoning paths *.correct.jsonl)")
                examples.append(_messages_path(row, file=str(f), lineno=lineno))
                rows_seen += 1
                continue
            if kind == "enriched" or has_question_fields(row, spec):
                if kind != "enriched":
                    validate_row(row, spec, f, lineno)  # its own source: every question field checked as one
                src = row
            else:
                src = sources.get(str(row["id"]))
                if src is None:
                    raise DataError(f, lineno, f"id {row['id']!r} has no source row (no matching *.jsonl or "
                                               f"*.enriched.jsonl in {f.parent}) and does not carry its own question "
                                               f"fields ({', '.join(question_fields(spec))})")
            examples.extend(_paths_from_row(row, src, cfg.task, only_correct=(kind != "enriched"),
                                            file=str(f), lineno=lineno))
            rows_seen += 1
    if not examples:
        raise ConfigError(f"no training paths in {', '.join(map(str, train_files(cfg)))}")
    return examples


def load_test_rows(cfg) -> list[dict[str, Any]]:
    """Test rows from ``--test_file`` or ``<root>/<task>/test/*.jsonl`` (source files only)."""
    if cfg.test_file:
        files = [Path(cfg.test_file)]
        if not files[0].is_file():
            raise ConfigError(f"--test_file {cfg.test_file}: no such file")
    else:
        folder = Path(cfg.data_root) / cfg.task / "test"
        files = sorted(p for p in folder.glob("*.jsonl") if not is_output_file(p))
        if not files:
            raise ConfigError(f"no test data for task {cfg.task!r}: {folder}/*.jsonl matched nothing "
                              "(pass --test_file)")
    rows: list[dict[str, Any]] = []
    for f in files:
        rows.extend(read_rows(f, cfg.task))
    return rows
