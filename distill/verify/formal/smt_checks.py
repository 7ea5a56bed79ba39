"""The equivalence check script for :mod:`distill.verify.formal.smt`: both programs renamed apart
(reference-declared constants ``|s.N|``, other reference symbols ``|r.N|``, candidate symbols
``|c.N|``) and the two implication checks, or ``None`` when the pair cannot be compared."""

from __future__ import annotations

from distill.verify.formal.smt_parse import Term, _show
from distill.verify.formal.smt_snapshot import _Side, _atoms, _quote, _rename, _snapshot, _sort_names, _split

def _expand_sort(s: Term, aliases: dict, depth: int = 0) -> str:
    if depth > 50:
        return "<deep>"
    if isinstance(s, str):
        if s in aliases and not aliases[s][0]:
            return _expand_sort(aliases[s][1], aliases, depth + 1)
        return s
    if s and isinstance(s[0], str) and s[0] in aliases and len(aliases[s[0]][0]) == len(s) - 1:
        params, body = aliases[s[0]]
        sub = dict(zip(params, s[1:]))
        return _expand_sort(_subst(body, sub), aliases, depth + 1)
    return "(" + " ".join(_expand_sort(x, aliases, depth + 1) for x in s) + ")"


def _subst(t: Term, sub: dict) -> Term:
    return sub.get(t, t) if isinstance(t, str) else [_subst(x, sub) for x in t]


def _def_name(f: list) -> list[str]:
    if f[0] == "define-funs-rec":
        return [d[0] for d in (f[1] if len(f) > 1 and isinstance(f[1], list) else []) if isinstance(d, list) and d]
    return [f[1]] if len(f) > 1 and isinstance(f[1], str) else []


def _build_checks(cand_forms: list, ref: _Side, timeout: float) -> str | None:
    """The two implication checks as one script (run after ``(reset)``), or ``None`` when the pair
    cannot be compared (sort mismatch, unsupported construct): fail closed."""
    snap = _snapshot(cand_forms)
    cand = _split(snap) if snap is not None else None
    if cand is None:
        return None
    # sorts and datatypes are shared by name and must be declared alike
    for name, cmd in cand.sorts.items():
        if name in ref.sorts and _show(cmd) != _show(ref.sorts[name]):
            return None
    ref_map: dict[str, str] = {n: _quote("s", n) for n in ref.decls}
    for f in ref.defs:
        for n in _def_name(f):
            ref_map[n] = _quote("r", n)
    cand_map: dict[str, str] = {}
    cand_only: dict[str, Term] = {}  # renamed name -> sort, the existentially quantified constants
    equalities: list[Term] = []
    for n, (args, sort) in cand.decls.items():
        if n in ref.decls:
            rargs, rsort = ref.decls[n]
            if len(args) != len(rargs) or _expand_sort(sort, cand.aliases) != _expand_sort(rsort, ref.aliases) \
                    or [_expand_sort(a, cand.aliases) for a in args] != [_expand_sort(a, ref.aliases) for a in rargs]:
                return None  # sort mismatch on a reference constant
            cand_map[n] = _quote("s", n)
        elif args:
            return None  # a candidate-only function would need a second-order exists
        else:
            cand_map[n] = _quote("c", n)
            cand_only[cand_map[n]] = sort
    kept_defs = []
    for f in cand.defs:
        names = _def_name(f)
        nullary = f[0] == "define-const" or (f[0] == "define-fun" and len(f) > 2 and f[2] == [])
        if nullary:
            n = names[0]
            if f[0] == "define-const" and len(f) == 4:
                sort, body = f[2], f[3]
            elif f[0] == "define-fun" and len(f) == 5:
                sort, body = f[3], f[4]
            else:
                return None
            if n in ref.decls:
                if ref.decls[n][0] or _expand_sort(sort, cand.aliases) != _expand_sort(ref.decls[n][1], ref.aliases):
                    return None
                cand_map[n] = _quote("s", n)
            else:
                cand_map[n] = _quote("c", n)
                cand_only[cand_map[n]] = sort
            equalities.append(("eq", cand_map[n], body))
        else:
            for n in names:
                if n in ref.decls:
                    return None
                cand_map[n] = _quote("c", n)
            kept_defs.append(f)
    lines = ["(set-option :print-success false)"]
    lines += [_show(c) for c in ref.sort_cmds]
    lines += [_show(c) for c in cand.sort_cmds if not all(n in ref.sorts for n in _sort_names(c))]
    for n, (args, sort) in ref.decls.items():
        lines.append(f"(declare-fun {ref_map[n]} ({' '.join(args)}) {_show(sort)})")
    for f in ref.defs:
        lines.append(_show(_rename_def(f, ref_map)))
    for name, sort in cand_only.items():
        lines.append(f"(declare-fun {name} () {_show(sort)})")
    for f in cand.defs:
        if f in kept_defs:
            renamed = _rename_def(f, cand_map)
            if any(a in cand_only for a in _atoms(renamed)):
                return None  # a function of candidate-only constants: not expressible under exists
            lines.append(_show(renamed))
    ca = [_show(_rename(a, cand_map)) for a in cand.asserts]
    ca += [f"(= {name} {_show(_rename(body, cand_map))})" for _, name, body in equalities]
    ra = [_show(_rename(a, ref_map)) for a in ref.asserts]
    conj_c = "(and true " + " ".join(ca) + ")"
    conj_r = "(and true " + " ".join(ra) + ")"
    lines += ["(push 1)", *[f"(assert {a})" for a in ca], f"(assert (not {conj_r}))", "(check-sat)",
              "(get-info :reason-unknown)", "(pop 1)", "(push 1)", *[f"(assert {a})" for a in ra]]
    if cand_only:
        binders = " ".join(f"({name} {_show(sort)})" for name, sort in cand_only.items())
        lines.append(f"(assert (not (exists ({binders}) {conj_c})))")
    else:
        lines.append(f"(assert (not {conj_c}))")
    lines += ["(check-sat)", "(get-info :reason-unknown)", "(pop 1)"]
    return "\n".join(lines) + "\n"


def _rename_def(f: list, m: dict[str, str]) -> list:
    """A definition with its name(s) and body renamed (parameters are bound)."""
    head = f[0]
    if head == "define-funs-rec" and len(f) == 3:
        decls = [[m.get(d[0], d[0]), *d[1:]] for d in f[1]]
        params = [frozenset(p[0] for p in d[1] if isinstance(p, list) and p) for d in f[1]]
        return [head, decls, [_rename(b, m, ps) for b, ps in zip(f[2], params)]]
    if head == "define-const" and len(f) == 4:
        return [head, m.get(f[1], f[1]), f[2], _rename(f[3], m)]
    if len(f) == 5 and isinstance(f[2], list):
        ps = frozenset(p[0] for p in f[2] if isinstance(p, list) and p and isinstance(p[0], str))
        return [head, m.get(f[1], f[1]), f[2], f[3], _rename(f[4], m, ps)]
    return f
