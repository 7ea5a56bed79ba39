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
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from distill.verify.formal import FENCES, FORMAL_TIMEOUT_S, FormalVerdict, LANGUAGES, extract_program
from distill.verify.formal.lexical import code_mask, code_positions, non_code_spans

Operator = Callable[[str, random.Random], "str | None"]

# --------------------------------------------------------------------------------------------- SMT

_SMT_DECL = re.compile(r"\(\s*declare-(?:const\s+([^\s()]+)\s+([^\s()]+|\([^()]*\))\s*\)|"
                       r"fun\s+([^\s()]+)\s+\(\s*\)\s+([^\s()]+|\([^()]*\))\s*\))")
_SMT_SYMBOL = re.compile(r"[A-Za-z~!@$%^&*_\-+=<>.?/][0-9A-Za-z~!@$%^&*_\-+=<>.?/]*")
_SMT_TOKEN_END = set(" \t\r\n();\"|")


def smt_constants(program: str) -> dict[str, str]:
    """Declared nullary constants -> their sort text (``declare-const`` and ``declare-fun c ()``)."""
    out: dict[str, str] = {}
    for m in _SMT_DECL.finditer(program):
        name, sort = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        out[name] = sort
    return out


def _top_forms(program: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every top-level parenthesised form (code only)."""
    mask = code_mask("smt", program)
    forms, depth, start = [], 0, 0
    for i, ch in enumerate(program):
        if not mask[i]:
            continue
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
            if depth == 0:
                forms.append((start, i + 1))
    return forms


def _form_head(program: str, span: tuple[int, int]) -> str:
    m = re.match(r"\(\s*([^\s()]+)", program[span[0]:span[1]])
    return m.group(1) if m else ""


def _symbol_uses(program: str, name: str, lo: int = 0, hi: int | None = None) -> list[int]:
    """Offsets of ``name`` as a whole SMT symbol token in code between ``lo`` and ``hi``."""
    mask = code_mask("smt", program)
    hi = len(program) if hi is None else hi
    out = []
    for m in re.finditer(re.escape(name), program[lo:hi]):
        s, e = lo + m.start(), lo + m.end()
        if all(mask[s:e]) and (s == 0 or program[s - 1] in _SMT_TOKEN_END) and \
                (e == len(program) or program[e] in _SMT_TOKEN_END):
            out.append(s)
    return out


def smt_drop_paren(program: str, rng: random.Random) -> str | None:
    """Drop one closing parenthesis."""
    pos = code_positions("smt", program, ")")
    if not pos:
        return None
    i = rng.choice(pos)
    return program[:i] + program[i + 1:]


def smt_undeclared_symbol(program: str, rng: random.Random) -> str | None:
    """Use a symbol that is never declared: one occurrence of a declared constant inside an
    ``assert`` is renamed to a fresh name (a typo or a forgotten declaration)."""
    consts = smt_constants(program)
    asserts = [s for s in _top_forms(program) if _form_head(program, s) == "assert"]
    uses = [(name, p) for s in asserts for name in consts for p in _symbol_uses(program, name, *s)]
    if not uses:
        return None
    name, p = rng.choice(sorted(uses, key=lambda u: u[1]))
    taken = set(_SMT_SYMBOL.findall(program))
    fresh = next(f"{name}_{k}" for k in range(1, 10_000) if f"{name}_{k}" not in taken)
    return program[:p] + fresh + program[p + len(name):]


def smt_non_bool_assert(program: str, rng: random.Random) -> str | None:
    """Assert a term that is not Boolean: an arithmetic constant (``(assert x)``) inserted before the
    first ``check-sat``, else one assertion's body wrapped in ``(ite B 1 0)``."""
    forms = _top_forms(program)
    numeric = [c for c, s in smt_constants(program).items() if s in ("Int", "Real")]
    checks = [s for s in forms if _form_head(program, s) in ("check-sat", "check-sat-assuming")]
    if numeric and checks:
        at = checks[0][0]
        return program[:at] + f"(assert {rng.choice(sorted(numeric))})\n" + program[at:]
    asserts = [s for s in forms if _form_head(program, s) == "assert"]
    if not asserts:
        return None
    s, e = rng.choice(asserts)
    m = re.match(r"\(\s*assert\s+", program[s:e])
    body = program[s + m.end():e - 1].strip()
    return program[:s] + f"(assert (ite {body} 1 0))" + program[e:]


def smt_get_value_before_check_sat(program: str, rng: random.Random) -> str | None:
    """Ask for a value before the first ``check-sat`` (no model is available yet)."""
    consts = sorted(smt_constants(program))
    checks = [s for s in _top_forms(program) if _form_head(program, s) in ("check-sat", "check-sat-assuming")]
    if not checks:
        return None
    ask = f"(get-value ({rng.choice(consts)}))" if consts else "(get-model)"
    at = checks[0][0]
    return program[:at] + ask + "\n" + program[at:]


def smt_stray_fence(program: str, rng: random.Random) -> str | None:
    """A markdown fence left in the program (the opening ``` or the closing one)."""
    if rng.random() < 0.5:
        return "```smt2\n" + program
    return program.rstrip("\n") + "\n```"


# --------------------------------------------------------------------------------------------- ASP

def _asp_periods(program: str) -> list[int]:
    """Statement-ending periods in code (not the ``..`` of an interval)."""
    return [p for p in code_positions("asp", program, ".")
            if not (p > 0 and program[p - 1] == ".") and not (p + 1 < len(program) and program[p + 1] == ".")]


def asp_drop_final_period(program: str, rng: random.Random) -> str | None:
    """Drop the period that ends the last statement."""
    periods = _asp_periods(program)
    if not periods:
        return None
    i = periods[-1]
    return program[:i] + program[i + 1:]


def asp_double_brace(program: str, rng: random.Random) -> str | None:
    """``{`` written ``{{`` (a template-escaping habit)."""
    pos = code_positions("asp", program, "{")
    if not pos:
        return None
    i = rng.choice(pos)
    return program[:i] + "{" + program[i:]


def _asp_statements(program: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each statement (end = offset of its final period), weak constraints skipped."""
    out, start = [], 0
    for p in _asp_periods(program):
        out.append((start, p))
        start = p + 1
    return [(s, e) for s, e in out if ":~" not in program[s:e]]


_ASP_VAR = re.compile(r"(?<![A-Za-z0-9_'])_*[A-Z][A-Za-z0-9_']*")


def asp_drop_body(program: str, rng: random.Random) -> str | None:
    """Drop the body of a rule whose head has a variable (the variable becomes unsafe)."""
    mask = code_mask("asp", program)
    cands = []
    for s, e in _asp_statements(program):
        necks = [p for p in code_positions("asp", program[s:e], ":-")]
        if not necks:
            continue
        n = s + necks[0]
        head = "".join(ch for ch, ok in zip(program[s:n], mask[s:n]) if ok)
        if head.strip() and _ASP_VAR.search(head):
            cands.append((n, e))
    if not cands:
        return None
    n, e = rng.choice(cands)
    return program[:n].rstrip() + program[e:]


def asp_if_for_neck(program: str, rng: random.Random) -> str | None:
    """``:-`` written `` if `` (prose-style rules)."""
    pos = code_positions("asp", program, ":-")
    if not pos:
        return None
    i = rng.choice(pos)
    return program[:i].rstrip() + " if " + program[i + 2:].lstrip()


def asp_slash_comment(program: str, rng: random.Random) -> str | None:
    """A ``%`` line comment written ``//`` (C style)."""
    pos = [m.start() for m in non_code_spans("asp", program) if m.group().startswith("%") and not
           m.group().startswith("%*")]
    if not pos:
        return None
    i = rng.choice(pos)
    return program[:i] + "//" + program[i + 1:]


def asp_hashless_directive(program: str, rng: random.Random) -> str | None:
    """``#show``/``#minimize``/``#maximize``/``#const`` written without the ``#``."""
    pos = [p for word in ("#show", "#minimize", "#maximize", "#const") for p in code_positions("asp", program, word)]
    if not pos:
        return None
    i = rng.choice(sorted(pos))
    return program[:i] + program[i + 1:]


def asp_single_quotes(program: str, rng: random.Random) -> str | None:
    """A string quoted with ``'`` instead of ``"``."""
    strings = [m for m in non_code_spans("asp", program) if m.group().startswith('"') and m.group().endswith('"')
               and len(m.group()) >= 2]
    if not strings:
        return None
    m = rng.choice(strings)
    return program[:m.start()] + "'" + m.group()[1:-1] + "'" + program[m.end():]


_ACCENT = {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú"}
_ASP_KEYWORDS = {"not", "inf", "sup"}


def asp_non_ascii_identifier(program: str, rng: random.Random) -> str | None:
    """A predicate or constant spelt with a non-ASCII letter (``café``), every occurrence."""
    mask = code_mask("asp", program)
    idents = sorted({m.group() for m in re.finditer(r"(?<![A-Za-z0-9_'#])[a-z][A-Za-z0-9_']*", program)
                     if all(mask[m.start():m.end()]) and m.group() not in _ASP_KEYWORDS})
    if not idents:
        return None
    name = rng.choice(idents)
    k = next((j for j, ch in enumerate(name) if ch in _ACCENT), None)
    new = name[:k] + _ACCENT[name[k]] + name[k + 1:] if k is not None else name + "ñ"
    pieces, last = [], 0
    for m in re.finditer(rf"(?<![A-Za-z0-9_'#]){re.escape(name)}(?![A-Za-z0-9_'])", program):
        if all(mask[m.start():m.end()]):
            pieces += [program[last:m.start()], new]
            last = m.end()
    return "".join(pieces) + program[last:]


# --------------------------------------------------------------------------------------------- DOT

_DOT_HEADER = re.compile(r"^(\s*(?:strict\s+)?(di)?graph)\b\s*(\"(?:\\.|[^\"\\])*\"|[A-Za-z_0-9.]+)?\s*\{",
                         re.I | re.S)
_DOT_KEYWORDS = ("node", "edge", "graph", "subgraph", "strict", "digraph")


def _dot_ids_in_edges(program: str) -> list[str]:
    mask = code_mask("dot", program)
    ids = set()
    for m in re.finditer(r"([A-Za-z_][A-Za-z_0-9]*)\s*(?:->|--)\s*([A-Za-z_][A-Za-z_0-9]*)", program):
        for g in (1, 2):
            if all(mask[m.start(g):m.end(g)]) and m.group(g).lower() not in _DOT_KEYWORDS:
                ids.add(m.group(g))
    return sorted(ids)


def dot_backtick_name(program: str, rng: random.Random) -> str | None:
    """The graph name in backticks (a Markdown habit)."""
    m = _DOT_HEADER.match(program)
    if not m:
        return None
    name = (m.group(3) or "G").strip('"')
    return program[:m.end(1)] + f" `{name}` {{" + program[m.end():]


def dot_undirected_edge_in_digraph(program: str, rng: random.Random) -> str | None:
    """One ``->`` of a digraph written ``--``."""
    m = _DOT_HEADER.match(program)
    pos = code_positions("dot", program, "->")
    if not (m and m.group(2) and pos):
        return None
    i = rng.choice(pos)
    return program[:i] + "--" + program[i + 2:]


def dot_drop_closing_brace(program: str, rng: random.Random) -> str | None:
    """Drop the graph's closing ``}``."""
    pos = code_positions("dot", program, "}")
    if not pos:
        return None
    i = pos[-1]
    return program[:i] + program[i + 1:]


def dot_keyword_id(program: str, rng: random.Random) -> str | None:
    """A node named with a bare keyword (``node``, ``edge``, ``graph``, ...), every occurrence."""
    ids = _dot_ids_in_edges(program)
    if not ids:
        return None
    name, word = rng.choice(ids), rng.choice(_DOT_KEYWORDS)
    mask = code_mask("dot", program)
    pieces, last = [], 0
    for m in re.finditer(rf"(?<![A-Za-z_0-9.]){re.escape(name)}(?![A-Za-z_0-9.])", program):
        if all(mask[m.start():m.end()]) and not program[m.end():].lstrip().startswith("="):
            pieces += [program[last:m.start()], word]
            last = m.end()
    return "".join(pieces) + program[last:]


def dot_unquoted_space_id(program: str, rng: random.Random) -> str | None:
    """A quoted id with a space written without its quotes (``New York -> Boston``)."""
    mask = code_mask("dot", program)
    quoted = [m for m in re.finditer(r'"([^"\\\n ]+(?: [^"\\\n ]+)+)"', program)
              if (m.start() == 0 or mask[m.start() - 1]) and not program[:m.start()].rstrip().endswith("=")]
    if not quoted:
        return None
    m = rng.choice(quoted)
    return program[:m.start()] + m.group(1) + program[m.end():]


def dot_mismatched_html_tag(program: str, rng: random.Random) -> str | None:
    """An HTML label whose closing tag does not match its opening one; a quoted label is turned into
    ``<<b>text</i>>`` when the graph has no HTML label."""
    closing = list(re.finditer(r"</([A-Za-z]+)>", program))
    if closing:
        m = rng.choice(closing)
        other = "i" if m.group(1).lower() != "i" else "b"
        return program[:m.start()] + f"</{other}>" + program[m.end():]
    labels = [m for m in re.finditer(r'label\s*=\s*"((?:[^"\\<>&]|\\.)*)"', program)]
    if not labels:
        return None
    m = rng.choice(labels)
    return program[:m.start()] + f"label=<<b>{m.group(1)}</i>>" + program[m.end():]


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
    if not show:
        return it
    from tqdm import tqdm
    return tqdm(it, total=total, desc=desc)


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
