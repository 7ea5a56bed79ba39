"""The meaning of an SMT-LIB2 program at its last ``check-sat`` for :mod:`distill.verify.formal.smt`:
the active declarations and assertions (``push``/``pop``/``reset`` simulated), scope-aware renaming,
and the snapshot sorted into sorts, declarations, definitions and assertions."""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.verify.formal.smt_parse import Term, _show


_DECLS = ("declare-const", "declare-fun")
_DEFS = ("define-fun", "define-const", "define-fun-rec", "define-funs-rec")
_SORTS = ("declare-sort", "define-sort", "declare-datatype", "declare-datatypes", "declare-codatatypes")
_IGNORED = {"set-option", "set-info", "set-logic", "get-value", "get-model", "get-assignment", "get-info",
            "get-option", "get-proof", "get-unsat-core", "get-unsat-assumptions", "get-assertions",
            "get-objectives", "echo", "eval", "simplify", "display", "help", "minimize", "maximize",
            "assert-soft", "check-sat", "check-sat-assuming"}


def _snapshot(forms: list) -> list | None:
    """The declarations and assertions active at the last check-sat, in order; ``None`` when the
    program uses a command whose meaning is not modelled (fail closed)."""
    frames: list[list] = [[]]
    snap: list | None = None
    global_decls = False
    for f in forms:
        if not isinstance(f, list) or not f or not isinstance(f[0], str):
            return None
        head = f[0]
        if head in _DECLS or head in _DEFS or head in _SORTS:
            (frames[0] if global_decls else frames[-1]).append(f)
        elif head == "assert":
            frames[-1].append(f)
        elif head in ("push", "pop"):
            k = int(f[1]) if len(f) > 1 and f[1].isdigit() else 1
            if head == "push":
                frames.extend([] for _ in range(k))
            elif k >= len(frames):
                return None
            else:
                del frames[len(frames) - k:]
        elif head == "reset":
            frames, global_decls = [[]], False
        elif head == "reset-assertions":
            frames = [[g for fr in frames for g in fr if g[0] != "assert"]] if global_decls else \
                [[g for g in frames[0] if g[0] != "assert"]]
        elif head not in _IGNORED:
            return None
        if head == "set-option" and len(f) > 2 and f[1] == ":global-declarations":
            global_decls = f[2] == "true"
        if head == "check-sat":
            snap = [g for fr in frames for g in fr]
        elif head == "check-sat-assuming":
            lits = f[1] if len(f) > 1 and isinstance(f[1], list) else []
            snap = [g for fr in frames for g in fr] + [["assert", ["and", "true", *lits]]]
    return snap


def _rename(t: Term, m: dict[str, str], bound: frozenset = frozenset()) -> Term:
    """Free occurrences of symbols in ``m`` renamed; binders respected; annotations (``!``) dropped."""
    if isinstance(t, str):
        return m[t] if t in m and t not in bound else t
    if not t:
        return t
    h = t[0]
    if h == "let" and len(t) == 3 and isinstance(t[1], list):
        binds = [[b[0], _rename(b[1], m, bound)] if isinstance(b, list) and len(b) == 2 else b for b in t[1]]
        names = {b[0] for b in t[1] if isinstance(b, list) and b and isinstance(b[0], str)}
        return ["let", binds, _rename(t[2], m, bound | names)]
    if h in ("forall", "exists", "lambda") and len(t) >= 3 and isinstance(t[1], list):
        names = {v[0] for v in t[1] if isinstance(v, list) and v and isinstance(v[0], str)}
        return [h, t[1], *[_rename(x, m, bound | names) for x in t[2:]]]
    if h == "match" and len(t) == 3 and isinstance(t[2], list):
        cases = []
        for case in t[2]:
            if isinstance(case, list) and len(case) == 2:
                pat = case[0]
                names = {pat} if isinstance(pat, str) else {p for p in pat[1:] if isinstance(p, str)}
                cases.append([pat, _rename(case[1], m, bound | names)])
            else:
                cases.append(case)
        return ["match", _rename(t[1], m, bound), cases]
    if h == "_":
        return t
    if h == "!" and len(t) >= 2:
        return _rename(t[1], m, bound)
    if h == "as" and len(t) == 3:
        return ["as", _rename(t[1], m, bound), t[2]]
    return [_rename(x, m, bound) for x in t]


def _atoms(t: Term):
    if isinstance(t, str):
        yield t
    else:
        for x in t:
            yield from _atoms(x)


def _quote(prefix: str, name: str) -> str:
    return f"|{prefix}.{name[1:-1] if name.startswith('|') else name}|"


@dataclass
class _Side:
    """One program's snapshot sorted into the parts the check script needs."""
    sorts: dict[str, Term] = field(default_factory=dict)      # sort name -> its command
    sort_cmds: list = field(default_factory=list)
    aliases: dict[str, tuple[list, Term]] = field(default_factory=dict)  # define-sort
    decls: dict[str, tuple[tuple, Term]] = field(default_factory=dict)   # name -> (arg sorts, sort)
    defs: list = field(default_factory=list)
    asserts: list = field(default_factory=list)


def _sort_names(cmd: list) -> list[str]:
    head = cmd[0]
    if head in ("declare-sort", "define-sort", "declare-datatype"):
        return [cmd[1]] if len(cmd) > 1 and isinstance(cmd[1], str) else []
    return [d[0] for d in (cmd[1] if len(cmd) > 1 and isinstance(cmd[1], list) else [])
            if isinstance(d, list) and d and isinstance(d[0], str)]


def _split(snap: list) -> _Side | None:
    side = _Side()
    for f in snap:
        head = f[0]
        if head in _SORTS:
            names = _sort_names(f)
            if not names:
                return None
            for name in names:
                side.sorts[name] = f
            side.sort_cmds.append(f)
            if head == "define-sort" and len(f) == 4 and isinstance(f[2], list):
                side.aliases[f[1]] = (f[2], f[3])
        elif head == "declare-const" and len(f) == 3 and isinstance(f[1], str):
            side.decls[f[1]] = ((), f[2])
        elif head == "declare-fun" and len(f) == 4 and isinstance(f[1], str) and isinstance(f[2], list):
            side.decls[f[1]] = (tuple(_show(s) for s in f[2]), f[3])
        elif head in _DEFS:
            side.defs.append(f)
        elif head == "assert" and len(f) == 2:
            side.asserts.append(f[1])
        else:
            return None
    return side
