"""Crash-safe JSONL reading and writing with errors that name the file, line and field.

Why: a bad line in a 10k-row teacher log must say *where* it is, and a crash halfway
through a rewrite must never leave a half-written file where a good one stood. Writers
therefore go through a temporary file in the same directory and ``os.replace`` it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from distill.errors import DistillError
from distill.data.tasks import (
    FORMAL_PATH_FIELDS, GOLD_WORDS, NON_TEXT_FIELDS, PATH_FIELDS, TASKS, TaskSpec, get_task, is_formal,
    question_fields,
)


class DataError(DistillError, ValueError):
    """Bad input data. The message starts with ``FILE:LINE:`` (and names the field)."""

    def __init__(self, path: str | os.PathLike, lineno: int | None, message: str):
        where = f"{os.fspath(path)}:{lineno}" if lineno is not None else os.fspath(path)
        super().__init__(f"{where}: {message}")
        self.path = os.fspath(path)
        self.lineno = lineno


#: Deepest nesting a row may have. Real rows nest 3 levels (``choices.label[i]``); a deeper one is
#: damaged or hostile, and a few hundred levels already overflow the stack of JSON encoders downstream.
MAX_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


def _scan(obj: Any) -> tuple[str | None, str] | None:
    """The first thing no UTF-8 file or JSON encoder can take back, in a parsed row, else None:
    ``(top-level field, character)`` for a lone surrogate, ``(top-level field, "")`` for nesting
    deeper than :data:`MAX_DEPTH`. Iterative, so a deep row cannot overflow the stack here."""
    stack: list[tuple[Any, int, str | None]] = [(obj, 0, None)]
    while stack:
        val, depth, field = stack.pop()
        if depth > MAX_DEPTH:
            return field, ""
        if isinstance(val, str):
            m = _SURROGATE.search(val)
            if m:
                return field, m.group()
        elif isinstance(val, dict):
            for k, v in val.items():
                top = k if field is None else field
                m = _SURROGATE.search(k)
                if m:
                    return top, m.group()
                stack.append((v, depth + 1, top))
        elif isinstance(val, list):
            stack.extend((v, depth + 1, field) for v in val)
    return None


def _field_of_deep_line(text: str) -> str | None:
    """The top-level key under which a JSON line nests deeper than :data:`MAX_DEPTH` (error path only)."""
    depth, in_str, esc, start, last, key = 0, False, False, 0, None, None
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
                last = text[start:i + 1]
        elif ch == '"':
            in_str, start = True, i
        elif ch == ":" and depth == 1 and last is not None:
            try:
                key = json.loads(last)
            except ValueError:
                key = None
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return key
        elif ch in "]}":
            depth -= 1
    return key


def _field_prefix(field: str | None) -> str:
    return f"field {field!r}: " if field is not None else ""


def _decode(raw: bytes, path: str | os.PathLike, lineno: int) -> str:
    """One line as text; bytes that are not UTF-8 fail naming the line, column and (if it parses) field."""
    enc = "utf-8-sig" if lineno == 1 else "utf-8"  # a byte-order mark is tolerated at the start of the file
    try:
        return raw.decode(enc)
    except UnicodeDecodeError as exc:
        col = len(raw[:exc.start].decode("utf-8", "replace")) + 1
        field = None
        with contextlib.suppress(ValueError, RecursionError):
            found = _scan(json.loads(raw.decode(enc, "surrogateescape")))
            field = found[0] if found else None
        raise DataError(path, lineno, f"{_field_prefix(field)}not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                                      f"column {col}); save the file as UTF-8") from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; 1-based line numbers.

    Every line must be UTF-8, one JSON object, nested at most :data:`MAX_DEPTH` deep and free of
    lone surrogates (``"\\ud800"`` parses, but no UTF-8 file can hold it: the first write would fail,
    possibly after other files were rewritten). Anything else is a :class:`DataError` here, at read
    time, so every command fails before it writes or pays for anything.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise DataError(path, lineno, f"{_field_prefix(_field_of_deep_line(line))}JSON nested more than "
                                              f"{MAX_DEPTH} levels deep") from None
            if not isinstance(obj, dict):
                raise DataError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
            found = _scan(obj)
            if found is not None:
                field, ch = found
                if not ch:
                    raise DataError(path, lineno, f"{_field_prefix(field)}JSON nested more than {MAX_DEPTH} levels deep")
                raise DataError(path, lineno, f"{_field_prefix(field)}contains a lone surrogate "
                                              f"{ascii(ch)[1:-1]} (an unpaired \\u escape), which UTF-8 cannot hold")
            yield lineno, obj


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


class OutputError(DistillError, OSError):
    """An output file cannot be written (read-only file system, full disk, a folder in the way).

    Also an :class:`OSError`, so code that handled the raw error keeps working."""


def output_error(path: str | os.PathLike, exc: OSError, what: str = "cannot write") -> OutputError:
    """One line naming the file and the system's reason (``Read-only file system``, ``No space left ...``)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    err = OutputError(f"{os.fspath(path)}: {what} ({reason})")
    err.errno = exc.errno
    return err


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only set it, which races threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _mode_for(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would leave: an existing file keeps its mode, a new one
    gets ``0o666 & ~umask``. (``mkstemp`` alone makes every file 0600 whatever the umask.)"""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def temp_prefix(path: str | os.PathLike) -> str:
    """Name prefix of this process's temporary files for ``path``: ``.NAME.PID.`` (the pid lets a
    later run tell a killed writer's leftovers from a live writer's file)."""
    return f".{Path(path).name}.{os.getpid()}."


@contextlib.contextmanager
def staged_open(path: str | os.PathLike) -> Iterator[tuple[IO[str], Path]]:
    """Write a complete, fsynced temporary file beside ``path`` (yielded as ``(fh, tmp)``) without
    renaming it: the caller renames it (:func:`atomic_open`, or several at once with
    :func:`distill.data.commit.commit`). On any error the temporary file is removed; an
    :class:`OSError` becomes an :class:`OutputError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        mode = _mode_for(path)
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    tmp = Path(tmp_name)
    done = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            yield fh, tmp
            fh.flush()
            os.fsync(fh.fileno())
        done = True
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[IO[str]]:
    """Open a text file for writing that appears at ``path`` only if the block completes.

    Writes go to a temporary file in the same directory, which is fsynced and then
    ``os.replace``d over ``path``; on any exception the temporary file is removed and an
    existing ``path`` is left untouched. The file gets the mode a normal write would
    (umask respected; an existing file keeps its mode).
    """
    with staged_open(path) as (fh, tmp):
        yield fh
    try:
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise output_error(path, exc) from None


def _write_rows(fh: IO[str], rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    for row in rows:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows to ``path`` atomically (temp file + fsync + rename). Returns the row count."""
    with atomic_open(path) as fh:
        return _write_rows(fh, rows)


def stage_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows to a complete temporary file beside ``path``; returns it, not yet renamed."""
    with staged_open(path) as (fh, tmp):
        _write_rows(fh, rows)
    return tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (e.g. metrics JSON)."""
    with atomic_open(path) as fh:
        fh.write(text)


def correct_only(row: dict[str, Any]) -> dict[str, Any]:
    """Project an enriched row onto its verified paths (the ``*.correct.jsonl`` schema).

    Keeps ``id``, ``gold_answer`` (and a formal row's ``facts``) and the parallel path lists
    (with ``valid_flags``/``diagnostics`` where the row has them) restricted to correct paths, plus ``path_idx`` (indices into the enriched lists) so analyses can recover
    each path's style and position.
    """
    flags = row.get("correct_flags") or []
    keep = [i for i, ok in enumerate(flags) if ok]
    out: dict[str, Any] = {"id": row["id"], "gold_answer": row["gold_answer"]}
    if "facts" in row:  # part of a formal row's reference: the instance both programs are solved on
        out["facts"] = row["facts"]
    for field in PATH_FIELDS:
        vals = row.get(field) or []
        out[field] = [vals[i] for i in keep if i < len(vals)]
    for field in FORMAL_PATH_FIELDS:  # formal tasks: every kept path is valid; its diagnostic is None
        if isinstance(row.get(field), list):
            out[field] = [row[field][i] for i in keep if i < len(row[field])]
    out["path_idx"] = keep
    return out


def enriched_path(source: str | os.PathLike) -> Path:
    """``dir/test.jsonl`` -> ``dir/test.enriched.jsonl``."""
    p = Path(source)
    return p.with_name(f"{stem_of(p)}.enriched.jsonl")


def correct_path(source: str | os.PathLike) -> Path:
    """``dir/test.jsonl`` or ``dir/test.enriched.jsonl`` -> ``dir/test.correct.jsonl``."""
    p = Path(source)
    return p.with_name(f"{stem_of(p)}.correct.jsonl")


OUTPUT_SUFFIXES = (".enriched.jsonl", ".correct.jsonl", ".judged.jsonl", ".cache.jsonl")


def stem_of(path: str | os.PathLike) -> str:
    """The source stem of a data file, with any of our output suffixes removed."""
    name = Path(path).name
    for suf in OUTPUT_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else Path(name).stem


def is_output_file(path: str | os.PathLike) -> bool:
    """True for files this project writes (never to be scanned as sources)."""
    return Path(path).name.endswith(OUTPUT_SUFFIXES)
