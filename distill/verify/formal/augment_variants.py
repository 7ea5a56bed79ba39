"""Row builders for ``distill augment --kind equiv|noise|steps`` (formal tasks).

- ``equiv``: equivalence-preserving variants of every valid program
  (:mod:`distill.verify.formal.augment_equiv`), each kept only when the verifier finds it correct
  against the original.
- ``noise``: instruction noise -- the problem text lower-cased with its punctuation stripped, on the
  instructions only: code (fenced blocks, backtick spans) and numbers (``3.5``, ``1,000``, ``-2``)
  are never touched, and the program is not changed.
- ``steps`` (ASP): multi-turn step-by-step rows from the ``%`` comments that describe each rule: the
  system turn holds a persona and the full problem, then per commented block a user instruction (the
  comment) and an assistant turn (its rules). Whole problems go to train or test (``test_share``,
  by a seeded hash of the id), so no problem leaks across the split.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from distill.verify.formal import FORMAL_TIMEOUT_S, verify_program
from distill.verify.formal.augment import _NAMES, Report, _programs, _progress, fenced, validate
from distill.verify.formal.augment_equiv import VARIANTS, smt_bridge, smt_rename_map


def _chat(language: str, question: str, program: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"You write {_NAMES[language]} programs."},
            {"role": "user", "content": question}, {"role": "assistant", "content": fenced(language, program)}]


def make_equiv_rows(language: str, rows: Iterable[dict[str, Any]], seed: int = 0, *, workers: int = 2,
                    timeout: float = FORMAL_TIMEOUT_S, progress: bool = False,
                    operators: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], Report]:
    """Every applicable variant of every valid program, kept when verified equivalent. Rows:
    ``{id, question, gold_answer (the variant), original, variant, messages}``. ``operators``
    replaces the language's table (name -> op), e.g. to show that a wrong variant is not kept."""
    if language not in VARIANTS:
        raise ValueError(f"no equivalence-preserving variants for {language!r}; one of {', '.join(VARIANTS)}")
    ops = VARIANTS[language] if operators is None else operators
    report = Report(language, tried={n: 0 for n in ops}, kept={n: 0 for n in ops})
    units = [(row, k, prog) for row in rows for k, prog in enumerate(_programs(language, row))]

    def check(unit) -> list[tuple[str, str | None, bool]]:
        row, k, prog = unit
        if not validate(language, prog, timeout=timeout).valid:
            return []
        out = []
        for name, op in ops.items():
            key = f"{seed}|{row['id']}|{k}|{name}"
            variant = op(prog, random.Random(key))
            if variant is None or variant.strip() == prog.strip():
                out.append((name, None, False))
                continue
            probe = variant
            if name == "rename_constants":
                probe = smt_bridge(prog, variant, smt_rename_map(prog, random.Random(key)))
            ok = (validate(language, variant, timeout=timeout).valid
                  and verify_program(language, probe, prog, row, timeout=timeout).correct)
            out.append((name, variant, ok))
        return out

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(_progress(pool.map(check, units), len(units), f"{language} variants", progress))
    items = []
    for (row, k, prog), res in zip(units, results):
        if not res:
            report.skipped += 1
            continue
        report.sources += 1
        for name, variant, ok in res:
            if variant is None:
                continue
            report.tried[name] += 1
            if ok:
                report.kept[name] += 1
                q = row.get("question") or ""
                items.append({"id": f"{row['id']}/{k}/{name}", "question": q, "gold_answer": variant,
                              "original": prog, "variant": name, "messages": _chat(language, q, variant)})
    return items, report


# ---------------------------------------------------------------------------------- instruction noise
_PROTECTED = re.compile(r"```.*?```|`[^`\n]*`|[-+]?\d+(?:[.,]\d+)*", re.S)
#: what "punctuation" means here: sentence marks, quotes and brackets; operators such as ``>`` or ``=``
#: carry meaning in a problem statement and are kept
_PUNCT = re.compile(r"[.,;:!?\"'()\[\]{}]")


def instruction_noise(text: str) -> str:
    """``text`` lower-cased, punctuation removed and spaces collapsed -- except inside code and numbers."""
    out, last = [], 0
    for m in _PROTECTED.finditer(text):
        out += [_noisy(text[last:m.start()]), m.group()]
        last = m.end()
    out.append(_noisy(text[last:]))
    return re.sub(r"[ \t]{2,}", " ", "".join(out)).strip()


def _noisy(prose: str) -> str:
    return _PUNCT.sub(" ", prose.lower())


def make_noise_rows(language: str, rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], Report]:
    """One noisy copy of every row: the question (and the user turns of ``messages``) with
    :func:`instruction_noise`; the program and every assistant turn unchanged."""
    report = Report(language, tried={"noise": 0}, kept={"noise": 0})
    items = []
    for row in rows:
        report.sources += 1
        q = row.get("question") or ""
        noisy = instruction_noise(q)
        if noisy == q:
            continue
        report.tried["noise"] += 1
        report.kept["noise"] += 1
        item = {**row, "id": f"{row['id']}/noise", "question": noisy}
        msgs = row.get("messages") or _chat(language, q, row["gold_answer"])
        item["messages"] = [{**m, "content": instruction_noise(m["content"])} if m["role"] == "user" else dict(m)
                            for m in msgs]
        if not row.get("messages"):
            item["messages"][1]["content"] = noisy
        items.append(item)
    return items, report


# ------------------------------------------------------------------------------ ASP step-by-step rows
def asp_steps(program: str) -> list[tuple[str, str]]:
    """``(instruction, rules)`` per ``%``-commented block of ``program``, in order: a run of comment lines
    is the instruction of the rules that follow it up to the next comment. Rules before the first
    comment, a comment with no rules after it, or block comments (``%* *%``) -> ``[]`` (not usable)."""
    if "%*" in program:
        return []
    steps: list[tuple[list[str], list[str]]] = []
    for line in program.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("%"):
            if not steps or steps[-1][1]:
                steps.append(([], []))
            steps[-1][0].append(s.lstrip("%").strip())
        elif not steps:
            return []
        else:
            steps[-1][1].append(line.rstrip())
    if not steps or any(not rules or not " ".join(text).strip() for text, rules in steps):
        return []
    return [(" ".join(t for t in text if t), "\n".join(rules)) for text, rules in steps]


def _split_of(row_id: str, seed: int, test_share: float) -> str:
    h = int(hashlib.sha256(f"{seed}|{row_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test_share else "train"


def make_step_rows(rows: Iterable[dict[str, Any]], seed: int = 0, *, test_share: float = 0.0,
                   timeout: float = FORMAL_TIMEOUT_S) -> tuple[dict[str, list[dict[str, Any]]], Report]:
    """Multi-turn rows (``split`` -> rows) from every valid, fully commented ASP program of ``rows``."""
    if not 0.0 <= test_share < 1.0:
        raise ValueError(f"test_share must be in [0, 1), got {test_share}")
    report = Report("asp", tried={"steps": 0}, kept={"steps": 0})
    out: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for row in rows:
        for k, prog in enumerate(_programs("asp", row)):
            steps = asp_steps(prog)
            report.sources += 1
            if not steps:
                continue
            report.tried["steps"] += 1
            if not validate("asp", prog, row.get("facts"), timeout=timeout).valid:
                continue
            report.kept["steps"] += 1
            q = (row.get("question") or "").strip()
            msgs = [{"role": "system", "content": f"You write {_NAMES['asp']} programs one rule at a time.\n\n"
                                                  f"Problem:\n{q}"}]
            for text, rules in steps:
                msgs += [{"role": "user", "content": text}, {"role": "assistant", "content": rules}]
            item = {"id": f"{row['id']}/{k}/steps", "question": q, "gold_answer": prog, "messages": msgs}
            if row.get("facts"):
                item["facts"] = row["facts"]
            out[_split_of(str(row["id"]), seed, test_share)].append(item)
    return out, report
