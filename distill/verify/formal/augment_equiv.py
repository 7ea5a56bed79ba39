"""Equivalence-preserving variants of valid programs: the same meaning written differently.

SMT-LIB2: ``rename_constants`` (every declared constant renamed at once to a fresh name),
``shuffle_asserts`` (the order of the top-level assertions before the first ``check-sat``),
``split_and`` (``(assert (and A B))`` -> ``(assert A) (assert B)``). DOT: ``shuffle_statements``
(the order of the edge statements of the top-level graph body), ``rename_ids`` (node ids renamed,
each node given its old id as ``label`` when it had none, so every effective label is kept).

None of these is trusted: each variant is kept only when the real verifier says it is correct
against the original (:func:`distill.verify.formal.verify_program`: valid, same status, mutual
implication on the constants for SMT; a label-preserving isomorphism of the graphs Graphviz built
for DOT). A renamed SMT program shares no constant with its original, so it is checked through a
*bridge*: the variant plus the original's declarations and ``(assert (= new old))`` for every
renamed constant; the bridge is equivalent to the original exactly when the renaming kept the
meaning (a fresh name that captured a bound variable or a function would break it).

Each operator is ``op(program, rng) -> str | None`` (``None``: it does not apply), deterministic
for a seeded :class:`random.Random`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from distill.verify.formal.augment_smt import _SMT_SYMBOL, _SMT_TOKEN_END, _form_head, _top_forms, smt_constants
from distill.verify.formal.lexical import code_mask

Variant = Callable[[str, random.Random], "str | None"]


# ---------------------------------------------------------------------------------------------- SMT
def _rename_tokens(program: str, mapping: dict[str, str]) -> str:
    """Every code token equal to a key of ``mapping`` replaced, all in one pass (simultaneous)."""
    mask = code_mask("smt", program)
    out, last = [], 0
    for m in _SMT_SYMBOL.finditer(program):
        s, e = m.start(), m.end()
        if m.group() not in mapping or not all(mask[s:e]):
            continue
        if (s > 0 and program[s - 1] not in _SMT_TOKEN_END) or (e < len(program) and program[e] not in _SMT_TOKEN_END):
            continue
        out += [program[last:s], mapping[m.group()]]
        last = e
    return "".join(out) + program[last:]


def smt_rename_map(program: str, rng: random.Random) -> dict[str, str]:
    """Declared constant -> a fresh name (``v1``, ``v2``, ... in a shuffled order) used nowhere in the program."""
    consts = sorted(smt_constants(program))
    taken = set(_SMT_SYMBOL.findall(program))
    fresh = [f"v{k}" for k in range(1, 10 * len(consts) + 100) if f"v{k}" not in taken][:len(consts)]
    rng.shuffle(fresh)
    return dict(zip(consts, fresh))


def smt_rename_constants(program: str, rng: random.Random) -> str | None:
    mapping = smt_rename_map(program, rng)
    return _rename_tokens(program, mapping) if mapping else None


def smt_bridge(original: str, variant: str, mapping: dict[str, str]) -> str:
    """``variant`` plus the original's constants, tied to the renamed ones, before its first ``check-sat``
    (what :func:`distill.verify.formal.verify_program` compares with ``original``)."""
    consts = smt_constants(original)
    checks = [s for s in _top_forms(variant) if _form_head(variant, s) in ("check-sat", "check-sat-assuming")]
    at = checks[0][0] if checks else len(variant)
    tie = "".join(f"(declare-const {old} {consts[old]})\n(assert (= {new} {old}))\n" for old, new in mapping.items())
    return variant[:at] + tie + variant[at:]


def _asserts_before_check(program: str) -> list[tuple[int, int]]:
    forms = _top_forms(program)
    out = []
    for s in forms:
        head = _form_head(program, s)
        if head in ("check-sat", "check-sat-assuming", "push", "pop", "reset"):
            break
        if head == "assert":
            out.append(s)
    return out


def smt_shuffle_asserts(program: str, rng: random.Random) -> str | None:
    """The assertions before the first ``check-sat`` in another order (their slots kept)."""
    spans = _asserts_before_check(program)
    if len(spans) < 2:
        return None
    texts = [program[s:e] for s, e in spans]
    order = list(range(len(texts)))
    while order == sorted(order):
        rng.shuffle(order)
    out, last = [], 0
    for (s, e), k in zip(spans, order):
        out += [program[last:s], texts[k]]
        last = e
    return "".join(out) + program[last:]


def _split_top_args(body: str) -> list[str] | None:
    """The top-level s-expressions of ``body`` (``None`` if a string/quoted symbol/comment is inside)."""
    if any(c in body for c in '";|'):
        return None
    args, depth, start = [], 0, None
    for i, ch in enumerate(body):
        if ch == "(":
            if depth == 0 and start is None:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and start is not None:
                args.append(body[start:i + 1])
                start = None
        elif depth == 0:
            if ch.isspace():
                if start is not None:
                    args.append(body[start:i])
                    start = None
            elif start is None:
                start = i
    if start is not None:
        args.append(body[start:])
    return args


def smt_split_and(program: str, rng: random.Random) -> str | None:
    """One ``(assert (and A B ...))`` before the first ``check-sat`` written as ``(assert A) (assert B) ...``."""
    cands = []
    for s, e in _asserts_before_check(program):
        m = re.match(r"\(\s*assert\s+\(\s*and\s+(.*)\)\s*\)\Z", program[s:e], re.S)
        if m:
            args = _split_top_args(m.group(1))
            if args and len(args) >= 2:
                cands.append((s, e, args))
    if not cands:
        return None
    s, e, args = rng.choice(cands)
    return program[:s] + "\n".join(f"(assert {a})" for a in args) + program[e:]


# ---------------------------------------------------------------------------------------------- DOT
_DOT_BODY = re.compile(r"^\s*(?:strict\s+)?(?:di)?graph\b[^{]*\{(.*)\}\s*\Z", re.I | re.S)
_DOT_EDGE = re.compile(r"^\s*(\"(?:\\.|[^\"\\])*\"|[A-Za-z_0-9.]+)\s*(->|--)\s*(\"(?:\\.|[^\"\\])*\"|[A-Za-z_0-9.]+)"
                       r"\s*(\[[^\[\]]*\])?\s*;?\s*\Z", re.S)
_DOT_NODE = re.compile(r"^\s*([A-Za-z_][A-Za-z_0-9]*)\s*(\[[^\[\]]*\])?\s*;?\s*\Z", re.S)
_DOT_KEYWORDS = {"node", "edge", "graph", "subgraph", "strict", "digraph"}


def _dot_lines(program: str) -> tuple[str, list[str], str] | None:
    """``(head, statement lines, tail)`` of a graph whose body is one simple statement per line
    (no comments, subgraphs, HTML labels or multi-line statements: those are left alone)."""
    m = _DOT_BODY.match(program)
    if not m or any(t in m.group(1) for t in ("{", "}", "/*", "//", "<", "#")):
        return None
    lines = [ln for ln in m.group(1).split("\n") if ln.strip()]
    if any(not (_DOT_EDGE.match(ln) or _DOT_NODE.match(ln) or re.match(r"^\s*(node|edge|graph)\s*\[", ln))
           for ln in lines):
        return None
    return program[:m.start(1)], lines, program[m.end(1):]


def dot_shuffle_statements(program: str, rng: random.Random) -> str | None:
    """The edge statements of the graph body in another order (other statements keep their lines)."""
    parsed = _dot_lines(program)
    if parsed is None:
        return None
    head, lines, tail = parsed
    slots = [i for i, ln in enumerate(lines) if _DOT_EDGE.match(ln)]
    if len(slots) < 2:
        return None
    order = slots[:]
    while order == slots:
        rng.shuffle(order)
    new = lines[:]
    for i, j in zip(slots, order):
        new[i] = lines[j]
    return head + "\n" + "\n".join(new) + "\n" + tail


def dot_rename_ids(program: str, rng: random.Random) -> str | None:
    """Bare node ids renamed to ``n1``, ``n2``, ... (shuffled); a node without a ``label`` gets its old
    id as one, declared before the edges, so every effective label stays what it was."""
    parsed = _dot_lines(program)
    if parsed is None:
        return None
    head, lines, tail = parsed
    ids: list[str] = []
    labelled: set[str] = set()
    for ln in lines:
        if (m := _DOT_EDGE.match(ln)):
            ids += [m.group(1), m.group(3)]
        elif (m := _DOT_NODE.match(ln)) and m.group(1) not in _DOT_KEYWORDS:
            ids.append(m.group(1))
            if m.group(2) and re.search(r"\blabel\s*=", m.group(2)):
                labelled.add(m.group(1))
    ids = [i for i in dict.fromkeys(ids) if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", i) and i not in _DOT_KEYWORDS]
    if not ids:
        return None
    taken = set(re.findall(r"[A-Za-z_0-9]+", program))
    fresh = [f"n{k}" for k in range(1, 10 * len(ids) + 100) if f"n{k}" not in taken][:len(ids)]
    rng.shuffle(fresh)
    mapping = dict(zip(ids, fresh))

    def sub(text: str) -> str:  # ids outside quotes and attribute lists only
        parts = re.split(r"(\"(?:\\.|[^\"\\])*\"|\[[^\[\]]*\])", text)
        return "".join(p if k % 2 else re.sub(r"\b[A-Za-z_][A-Za-z_0-9]*\b", lambda t: mapping.get(t.group(), t.group()), p)
                       for k, p in enumerate(parts))

    decls = [f'  {mapping[i]} [label="{i}"];' for i in ids if i not in labelled]
    return head + "\n" + "\n".join(decls + [sub(ln) for ln in lines]) + "\n" + tail


#: language -> variant name -> operator, in report order
VARIANTS: dict[str, dict[str, Variant]] = {
    "smt": {"rename_constants": smt_rename_constants, "shuffle_asserts": smt_shuffle_asserts,
            "split_and": smt_split_and},
    "dot": {"shuffle_statements": dot_shuffle_statements, "rename_ids": dot_rename_ids},
}
