"""The projection for :mod:`distill.verify.formal.asp`: the signatures the reference is compared on
(from its ``#show`` statements, parsed with ``clingo.ast``) and the ``#show``/``#project``
directives appended to both programs."""

from __future__ import annotations

from functools import lru_cache

def _term_key(term) -> tuple:
    from clingo.ast import ASTType, UnaryOperator

    t = term.ast_type
    if t == ASTType.Function and term.name and not term.external:
        return (term.name, len(term.arguments), True)
    if t == ASTType.UnaryOperation and term.operator_type == UnaryOperator.Minus:
        inner = _term_key(term.argument)
        return (inner[0], inner[1], False) if len(inner) == 3 else ("#any",)
    if t == ASTType.SymbolicTerm:
        sym = term.symbol
        import clingo

        if sym.type == clingo.SymbolType.Function and sym.name:
            return (sym.name, len(sym.arguments), sym.positive)
        return ("#term",)
    if t in (ASTType.Variable, ASTType.BinaryOperation) or (t == ASTType.Function and not term.name):
        return ("#term",)
    return ("#any",)


@lru_cache(maxsize=1024)
def projection_keys(reference: str, facts: str = "") -> frozenset[tuple] | None:
    """The signatures the reference is compared on: those of its ``#show`` statements (``#show
    t : body.`` adds ``t``'s), or every predicate signature of reference + facts when it has no
    ``#show``. ``None`` when the reference does not parse (the caller fails closed)."""
    import clingo.ast as ast
    from clingo.ast import ASTType

    stmts: list = []
    try:
        ast.parse_string(reference + "\n" + facts, stmts.append, logger=lambda code, msg: None)
    except RuntimeError:
        return None
    shown: set[tuple] = set()
    has_show = False
    every: set[tuple] = set()

    class Atoms(ast.Transformer):
        def visit_SymbolicAtom(self, node):
            sym = node.symbol
            parts = sym.arguments if sym.ast_type == ASTType.Pool else [sym]
            for p in parts:
                key = _term_key(p)
                if len(key) == 3:
                    every.add(key)
            return node

    for s in stmts:
        if s.ast_type == ASTType.ShowSignature:
            has_show = True
            if s.name:
                shown.add((s.name, s.arity, s.positive))
        elif s.ast_type == ASTType.ShowTerm:
            has_show = True
            shown.add(_term_key(s.term))
        else:
            Atoms()(s)
    return frozenset(shown if has_show else every)


def _directives(keys: frozenset[tuple]) -> tuple[str, list[str]]:
    """``#show``/``#project`` lines for ``keys`` and the projection flag to use."""
    lines = []
    for k in sorted(k for k in keys if len(k) == 3):
        sig = f"{'' if k[2] else '-'}{k[0]}/{k[1]}"
        lines.append(f"#show {sig}.\n#project {sig}.")
    # show terms are not atoms: project on what is shown instead of the #project atoms
    mode = "show" if any(len(k) == 1 for k in keys) else "project"
    return "\n".join(lines) + "\n", [f"--project={mode}"]
