"""Training data from valid formal programs: repair pairs and (ASP) alpha-renamed variants.

Repair pairs teach a student to fix a program from the solver's error. A valid reference program is
corrupted with one operator modelled on a real teacher mistake (SMT: a dropped ``)``, an undeclared
symbol, a non-Bool assert, ``get-value`` before ``check-sat``, a stray markdown fence; ASP: a missing
final ``.``, ``{{``, a dropped body, `` if `` for ``:-``, ``//`` comments, ``show``/``minimize``
without ``#``, ``'`` quotes, a non-ASCII identifier; DOT: a backticked graph name, ``--`` in a
digraph, a missing ``}``, bare keyword ids, unquoted ids with spaces, mismatched HTML-label tags).

Why every corruption goes through the real solver: some of these are *valid* in the solver (clingo
reads ``p('x')`` and ``a : b.``; ``a b -> c`` is two DOT statements), and a pair whose "broken"
program is accepted teaches a student to "fix" correct code. So a corruption is kept only when
:func:`distill.verify.formal.validate_program` reports it invalid (not a timeout), and the row's
``error`` is exactly the solver's diagnostic. Each operator's keep rate (kept / tried) is reported.

Each operator is ``op(program, rng) -> str | None`` (``None``: it does not apply to this program),
deterministic for a seeded :class:`random.Random`.

The operators live in :mod:`~distill.verify.formal.augment_smt`, :mod:`~distill.verify.formal.augment_asp`
and :mod:`~distill.verify.formal.augment_dot`; this module holds their table and the pair builders.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from distill.verify.formal import FENCES, FORMAL_TIMEOUT_S, FormalVerdict, LANGUAGES, extract_program
from distill.verify.formal.augment_asp import (asp_double_brace, asp_drop_body, asp_drop_final_period,
                                               asp_hashless_directive, asp_if_for_neck, asp_non_ascii_identifier,
                                               asp_single_quotes, asp_slash_comment)
from distill.verify.formal.augment_dot import (dot_backtick_name, dot_drop_closing_brace, dot_keyword_id,
                                               dot_mismatched_html_tag, dot_undirected_edge_in_digraph,
                                               dot_unquoted_space_id)
from distill.verify.formal.augment_smt import (smt_drop_paren, smt_get_value_before_check_sat, smt_non_bool_assert,
                                               smt_stray_fence, smt_undeclared_symbol)

Operator = Callable[[str, random.Random], "str | None"]

#: language -> operator name -> operator, in report order
OPERATORS: dict[str, dict[str, Operator]] = {
    "smt": {"drop_paren": smt_drop_paren, "undeclared_symbol": smt_undeclared_symbol,
            "non_bool_assert": smt_non_bool_assert, "get_value_before_check_sat": smt_get_value_before_check_sat,
            "stray_fence": smt_stray_fence},
    "asp": {"drop_final_period": asp_drop_final_period, "double_brace": asp_double_brace,
            "drop_body": asp_drop_body, "if_for_neck": asp_if_for_neck, "slash_comment": asp_slash_comment,
            "hashless_directive": asp_hashless_directive, "single_quotes": asp_single_quotes,
            "non_ascii_identifier": asp_non_ascii_identifier},
    "dot": {"backtick_name": dot_backtick_name, "undirected_edge_in_digraph": dot_undirected_edge_in_digraph,
            "drop_closing_brace": dot_drop_closing_brace, "keyword_id": dot_keyword_id,
            "unquoted_space_id": dot_unquoted_space_id, "mismatched_html_tag": dot_mismatched_html_tag},
}

_NAMES = {"smt": "SMT-LIB2 (Z3)", "asp": "Answer Set Programming (clingo)", "dot": "DOT (Graphviz)"}


# --------------------------------------------------------------------------------------------- pairs

def validate(language: str, program: str, facts: str | None = None, *,
             timeout: float = FORMAL_TIMEOUT_S) -> FormalVerdict:
    """The solver's verdict on ``program`` (an ASP row's ``facts`` appended, as the verifier does)."""
    if language == "asp" and facts:
        from distill.verify.formal import asp
        return asp.validate(program, timeout=timeout, facts=facts)
    from distill.verify.formal import validate_program
    return validate_program(language, program, timeout=timeout)


def fenced(language: str, program: str) -> str:
    """``program`` in a fence of the language's first tag, long enough not to be closed by the program."""
    runs = [len(r) for r in re.findall(r"`+", program)]
    ticks = "`" * max(3, max(runs, default=0) + 1)
    return f"{ticks}{FENCES[language][0]}\n{program.strip()}\n{ticks}"


def repair_messages(language: str, question: str, broken: str, error: str, fixed: str) -> list[dict[str, str]]:
    """The chat turns of one repair example: [problem + broken program + solver error] -> fixed program."""
    system = (f"You write {_NAMES[language]} programs. When a program is rejected by the solver, reply with "
              f"the corrected program only, in a ```{FENCES[language][0]} block.")
    user = (f"Problem:\n{question.strip()}\n\nProgram:\n{fenced(language, broken)}\n\n"
            f"Solver error:\n{error}\n\nFix the program.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user},
            {"role": "assistant", "content": fenced(language, fixed)}]


@dataclass
class Report:
    """Counts of one augmentation run: per operator ``tried`` (it applied) and ``kept`` (the solver
    rejected the corruption, with a diagnostic); ``skipped`` source programs that are not valid
    themselves; ``timed_out`` solver calls (never kept)."""

    language: str
    tried: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    sources: int = 0
    skipped: int = 0
    timed_out: int = 0
    written: int = 0
    template_fixed: tuple[int, int] | None = None  # (fixed, total) broken programs, when measured

    def rate(self, op: str) -> float:
        return self.kept.get(op, 0) / self.tried[op] if self.tried.get(op) else 0.0

    def format(self) -> str:
        lines = [f"{self.language}: {self.sources} valid source programs ({self.skipped} invalid skipped, "
                 f"{self.timed_out} solver timeouts)"]
        for op in self.tried:
            lines.append(f"  {op:<28} kept {self.kept.get(op, 0):>4} / {self.tried[op]:<4} "
                         f"({100 * self.rate(op):.0f}%)")
        total_t, total_k = sum(self.tried.values()), sum(self.kept.values())
        lines.append(f"  {'total':<28} kept {total_k:>4} / {total_t:<4}")
        if self.template_fixed is not None:
            fixed, total = self.template_fixed
            lines.append(f"  template repair fixes {fixed} / {total} broken programs"
                         + (f" ({100 * fixed / total:.0f}%)" if total else ""))
        return "\n".join(lines)


def _programs(language: str, row: dict[str, Any]) -> list[str]:
    """The distinct programs of a row: its reference and, for a correct-file row, every correct path's
    extracted program (each verified correct, so each a valid program)."""
    progs = [row["gold_answer"]]
    for resp in row.get("responses") or []:
        if isinstance(resp, str):
            progs.append(extract_program(language, resp))
    return [p for p in dict.fromkeys(p.strip() for p in progs) if p]


def _progress(it, total: int, desc: str, show: bool):
    """``it`` under a progress bar (rate, ETA) when ``show``; then one summary line on stderr."""
    if not show:
        yield from it
        return
    import sys
    import time

    from distill.progress import progress_bar

    start, done = time.perf_counter(), 0
    with progress_bar(total, desc, unit="program") as bar:
        for x in it:
            done += 1
            bar.update(1)
            yield x
    wall = time.perf_counter() - start
    print(f"{desc}: {done} programs checked in {wall:.1f} s ({done / max(wall, 1e-9):.1f} programs/s)",
          file=sys.stderr)


def make_repair_pairs(language: str, rows: Iterable[dict[str, Any]], seed: int = 0, *,
                      operators: Iterable[str] | None = None, workers: int = 2,
                      timeout: float = FORMAL_TIMEOUT_S, progress: bool = False) -> tuple[list[dict[str, Any]], Report]:
    """Corrupt every valid program of ``rows`` with each applicable operator; keep a corruption only when
    the real solver rejects it. Rows: ``{id, question, broken, error, gold_answer, operator, messages}``
    (+ ``facts`` for ASP rows that have them). Deterministic for a given ``seed``."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown formal language {language!r}; one of {', '.join(LANGUAGES)}")
    ops = OPERATORS[language]
    names = list(ops) if operators is None else list(operators)
    report = Report(language, tried={n: 0 for n in names}, kept={n: 0 for n in names})
    rows = list(rows)
    units = [(row, k, prog) for row in rows for k, prog in enumerate(_programs(language, row))]

    def check_source(unit):
        row, _, prog = unit
        return validate(language, prog, row.get("facts"), timeout=timeout)

    jobs = []  # (row, k, source program, operator, broken)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        verdicts = list(pool.map(check_source, units))
        for (row, k, prog), verdict in zip(units, verdicts):
            if not verdict.valid:
                report.skipped += 1
                report.timed_out += verdict.timed_out
                continue
            report.sources += 1
            for name in names:
                rng = random.Random(f"{seed}|{row['id']}|{k}|{name}")
                broken = ops[name](prog, rng)
                if broken is None or broken.strip() == prog.strip():
                    continue
                report.tried[name] += 1
                jobs.append((row, k, prog, name, broken))
        results = list(_progress(pool.map(lambda j: validate(language, j[4], j[0].get("facts"), timeout=timeout), jobs),
                                 len(jobs), f"{language} corruptions", progress))
    pairs = []
    for (row, k, prog, name, broken), verdict in zip(jobs, results):
        report.timed_out += verdict.timed_out
        if verdict.valid or verdict.timed_out or not verdict.diagnostic:
            continue
        report.kept[name] += 1
        pair = {"id": f"{row['id']}/{k}/{name}", "question": row.get("question") or "", "broken": broken,
                "error": verdict.diagnostic, "gold_answer": prog, "operator": name,
                "messages": repair_messages(language, row.get("question") or "", broken, verdict.diagnostic, prog)}
        if row.get("facts"):
            pair["facts"] = row["facts"]
        pairs.append(pair)
    return pairs, report


def make_rename_rows(rows: Iterable[dict[str, Any]], seed: int = 0, *, workers: int = 2,
                     timeout: float = FORMAL_TIMEOUT_S, progress: bool = False) -> tuple[list[dict[str, Any]], Report]:
    """ASP alpha-renamed variants (:func:`distill.verify.formal.asp_rename.rename_checked`), each kept only
    when the verifier finds the same projected answer sets. Rows: ``{id, question, gold_answer (renamed),
    original, messages}`` (+ ``facts``); the report's one operator is ``rename``."""
    from distill.verify.formal.asp_rename import rename_checked

    report = Report("asp", tried={"rename": 0}, kept={"rename": 0})
    units = [(row, k, prog) for row in rows for k, prog in enumerate(_programs("asp", row))]

    def one(unit):
        row, k, prog = unit
        if not validate("asp", prog, row.get("facts"), timeout=timeout).valid:
            return None
        renamed = rename_checked(prog, seed + k, row.get("facts") or None, timeout=timeout)
        return "same" if renamed is not None and renamed.strip() == prog.strip() else renamed or ""

    out = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(_progress(pool.map(one, units), len(units), "asp renamings", progress))
    for (row, k, prog), renamed in zip(units, results):
        if renamed is None:
            report.skipped += 1
            continue
        report.sources += 1
        if renamed == "same":
            continue  # no variables: nothing to rename
        report.tried["rename"] += 1
        if not renamed:
            continue
        report.kept["rename"] += 1
        q = row.get("question") or ""
        item = {"id": f"{row['id']}/{k}/rename", "question": q, "gold_answer": renamed, "original": prog,
                "messages": [{"role": "system", "content": f"You write {_NAMES['asp']} programs."},
                             {"role": "user", "content": q}, {"role": "assistant", "content": fenced("asp", renamed)}]}
        if row.get("facts"):
            item["facts"] = row["facts"]
        out.append(item)
    return out, report
