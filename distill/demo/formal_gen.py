"""Seeded generators of small formal problems with known reference programs (``distill demo --task
smt|asp|dot``): linear integer puzzles (SMT-LIB2), graph colouring instances (ASP), state machines
and dependency lists described in words (DOT).

Why these shapes: the demo's students are ~100k-parameter models with a tokenizer trained on this
text, so a problem must be solvable by *translating* its sentences, one by one and in order, into
short program lines (copying names and numbers from the question), never by search: the solver
does the search. Every reference program is a few lines; the commented step-by-step variant puts
one comment before each part. A problem is data (``spec``, a JSON-able dict kept in the row, like
the ``arith`` rows keep their steps), so the scripted teacher renders from it and
:func:`mutate` makes the teacher's valid-but-wrong programs (a changed constant, a dropped or
reversed edge): the verifier, not the generator, decides what is correct.

Rows are the product's ``smt`` / ``asp`` / ``dot`` rows: ``id``, ``question``, ``gold_answer`` (the
reference program) and ``spec``; written by :func:`write_formal_splits` as
``<root>/<task>/{train,test}/{train,test}.jsonl``.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.data.jsonl import atomic_write_jsonl
from distill.errors import ConfigError

LANGUAGES = ("smt", "asp", "dot")
_VARS = ("x", "y", "z", "a", "b", "c", "m", "n", "p", "q")
_STATES = ("idle", "busy", "done", "ready", "wait", "error", "open", "closed", "paused", "off")
_EVENTS = ("go", "stop", "reset", "finish", "fail", "retry", "pause", "resume", "start", "halt")
_PKGS = ("app", "web", "api", "db", "log", "core", "util", "auth", "cli", "net")


@dataclass(frozen=True)
class FormalGenConfig:
    """How many problems of which language, from which seed."""

    task: str = "smt"
    n_train: int = 400
    n_test: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in LANGUAGES:
            raise ConfigError(f"demo task must be one of {', '.join(LANGUAGES)}, got {self.task!r}")
        if self.n_train < 1 or self.n_test < 1:
            raise ConfigError(f"n_train and n_test must be >= 1, got {self.n_train} / {self.n_test}")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ----------------------------------------------------------------------------------------- SMT
_SMT_TEXT = {"sum": "{0} plus {1} is {2}", "diff": "{0} minus {1} is {2}", "twice": "twice {0} is {1}",
             "gt": "{0} is greater than {1}", "lt": "{0} is less than {1}"}
_SMT_TERM = {"sum": "(= (+ {0} {1}) {2})", "diff": "(= (- {0} {1}) {2})", "twice": "(= (* 2 {0}) {1})",
             "gt": "(> {0} {1})", "lt": "(< {0} {1})"}
_EQUALITIES = ("sum", "diff", "twice")


def _pair(kind: str, a: str, b: str, val: dict[str, int]) -> list[Any]:
    if kind == "diff" and val[a] < val[b]:
        a, b = b, a  # differences stay >= 0 (no negative literals)
    return [kind, a, b, val[a] + val[b] if kind == "sum" else val[a] - val[b]]


def _smt_spec(rng: random.Random) -> dict[str, Any]:
    """Two or three unknowns pinned to one solution: a chain of sums/differences over consecutive
    unknowns plus one closing condition (the other relation, a doubling, or the outer pair's sum), and
    for two unknowns sometimes a redundant bound."""
    names = rng.sample(_VARS, 3 if rng.random() < 0.3 else 2)
    val = {v: rng.randint(0, 9) for v in names}
    kinds = [rng.choice(("sum", "diff")) for _ in names[1:]]
    cons = [_pair(k, names[i], names[i + 1], val) for i, k in enumerate(kinds)]
    v = rng.choice(names)
    if len(names) == 2:
        last = rng.choice([_pair("diff" if kinds[0] == "sum" else "sum", names[0], names[1], val),
                           ["twice", v, 2 * val[v]]])
    else:
        last = rng.choice([_pair("sum", names[0], names[2], val), ["twice", v, 2 * val[v]]])
    cons.append(last)
    if len(names) == 2 and rng.random() < 0.5:
        v = rng.choice(names)
        cons.append(["gt", v, rng.randint(0, val[v] - 1)] if val[v] > 0 and rng.random() < 0.5
                    else ["lt", v, val[v] + rng.randint(1, 3)])
    return {"vars": names, "cons": cons}


def _smt_question(spec: dict[str, Any]) -> str:
    names = spec["vars"]
    conds = [_SMT_TEXT[c[0]].format(*c[1:]) for c in spec["cons"]]
    return f"Find integers {_join(names)} such that {_join(conds)}."


def _smt_program(spec: dict[str, Any], comments: bool) -> str:
    lines = ["; the unknowns"] if comments else []
    lines += [f"(declare-const {v} Int)" for v in spec["vars"]]
    for c in spec["cons"]:
        if comments:
            lines.append("; " + _SMT_TEXT[c[0]].format(*c[1:]))
        lines.append(f"(assert {_SMT_TERM[c[0]].format(*c[1:])})")
    return "\n".join(lines + ["(check-sat)"])


def _smt_mutate(spec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A changed constant in one equality (the solution moves, or there is none)."""
    out = copy.deepcopy(spec)
    i = rng.choice([i for i, c in enumerate(out["cons"]) if c[0] in _EQUALITIES])
    old = out["cons"][i][-1]
    out["cons"][i][-1] = old + rng.choice([1, 2]) if old < 2 or rng.random() < 0.5 else old - rng.choice([1, 2])
    return out


# ----------------------------------------------------------------------------------------- ASP
def _asp_spec(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(3, 5)
    order = list(range(1, n + 1))
    rng.shuffle(order)
    edges = {tuple(sorted((order[i], order[i + 1]))) for i in range(n - 1)}  # connected: a path
    others = [(a, b) for a in range(1, n + 1) for b in range(a + 1, n + 1) if (a, b) not in edges]
    edges |= set(rng.sample(others, min(len(others), rng.randint(0, 2))))
    return {"n": n, "k": rng.choice([2, 3]), "edges": [list(e) for e in sorted(edges)]}


def _asp_question(spec: dict[str, Any]) -> str:
    edges = [f"{a}-{b}" for a, b in spec["edges"]]
    return (f"Colour the nodes 1 to {spec['n']} with {spec['k']} colours so that the two ends of every edge "
            f"have different colours. The edges are {_join(edges)}.")


def _asp_program(spec: dict[str, Any], comments: bool) -> str:
    parts = [("the nodes", f"node(1..{spec['n']}).", ),
             ("the edges", " ".join(f"edge({a},{b})." for a, b in spec["edges"])),
             ("the colours", f"col(1..{spec['k']})."),
             ("every node gets one colour", "1 { color(N,C) : col(C) } 1 :- node(N)."),
             ("the ends of an edge differ", ":- edge(A,B), color(A,C), color(B,C)."),
             ("show the colouring", "#show color/2.")]
    return "\n".join((f"% {why}\n{code}" if comments else code) for why, code in parts)


def _asp_mutate(spec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One edge dropped, or the wrong number of colours."""
    out = copy.deepcopy(spec)
    if len(out["edges"]) > 1 and rng.random() < 0.5:
        out["edges"].pop(rng.randrange(len(out["edges"])))
    else:
        out["k"] = out["k"] + 1 if out["k"] == 2 else out["k"] - 1
    return out


# ----------------------------------------------------------------------------------------- DOT
def _dot_spec(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        states = rng.sample(_STATES, rng.randint(3, 4))
        edges = [[states[i], states[i + 1]] for i in range(len(states) - 1)]
        if rng.random() < 0.6:
            edges.append([states[-1], states[0]])
        events = rng.sample(_EVENTS, len(edges))
        return {"kind": "fsm", "states": states, "edges": [e + [ev] for e, ev in zip(edges, events)]}
    pkgs = rng.sample(_PKGS, rng.randint(3, 4))
    edges = [[pkgs[rng.randrange(i)], pkgs[i]] for i in range(1, len(pkgs))]  # a tree: no cycles
    edges.sort(key=lambda e: pkgs.index(e[0]))
    return {"kind": "deps", "edges": edges}


def _dot_question(spec: dict[str, Any]) -> str:
    if spec["kind"] == "fsm":
        moves = [f"on {ev} it moves from {a} to {b}" for a, b, ev in spec["edges"]]
        return f"Draw a state machine with the states {_join(spec['states'])}: {'; '.join(moves)}."
    by_src: dict[str, list[str]] = {}
    for a, b in spec["edges"]:
        by_src.setdefault(a, []).append(b)
    deps = [f"{a} depends on {_join(bs)}" for a, bs in by_src.items()]
    return f"Draw the dependency graph of these packages: {'; '.join(deps)}."


def _dot_program(spec: dict[str, Any], comments: bool) -> str:
    lines = ["digraph {"]
    for e in spec["edges"]:
        if spec["kind"] == "fsm":
            if comments:
                lines.append(f"  // on {e[2]}: {e[0]} to {e[1]}")
            lines.append(f'  {e[0]} -> {e[1]} [label="{e[2]}"];')
        else:
            if comments:
                lines.append(f"  // {e[0]} depends on {e[1]}")
            lines.append(f"  {e[0]} -> {e[1]};")
    return "\n".join(lines + ["}"])


def _dot_mutate(spec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One edge reversed, or (state machines) two events swapped."""
    out = copy.deepcopy(spec)
    edges = out["edges"]
    if out["kind"] == "fsm" and rng.random() < 0.5:
        i, j = rng.sample(range(len(edges)), 2)
        edges[i][2], edges[j][2] = edges[j][2], edges[i][2]
    else:
        e = edges[rng.randrange(len(edges))]
        e[0], e[1] = e[1], e[0]
    return out


# ----------------------------------------------------------------------------------------- API
_GEN = {"smt": (_smt_spec, _smt_question, _smt_program, _smt_mutate),
        "asp": (_asp_spec, _asp_question, _asp_program, _asp_mutate),
        "dot": (_dot_spec, _dot_question, _dot_program, _dot_mutate)}


def question(task: str, spec: dict[str, Any]) -> str:
    return _GEN[task][1](spec)


def program(task: str, spec: dict[str, Any], *, comments: bool = False) -> str:
    """The program of ``spec`` (with ``comments``: one comment line before each part)."""
    return _GEN[task][2](spec, comments)


def mutate(task: str, spec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A slightly wrong copy of ``spec`` (its program stays valid; the verifier decides if it is wrong)."""
    return _GEN[task][3](spec, rng)


def generate(cfg: FormalGenConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Distinct problems (by question text), split train/test; deterministic for ``cfg.seed``."""
    rng = random.Random(f"formal|{cfg.task}|{cfg.seed}")
    make = _GEN[cfg.task][0]
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    tries = 0
    while len(rows) < cfg.n_train + cfg.n_test:
        tries += 1
        if tries > 50 * (cfg.n_train + cfg.n_test):
            raise ConfigError(f"could not draw {cfg.n_train}+{cfg.n_test} distinct {cfg.task} problems; "
                              "lower n_train/n_test")
        spec = make(rng)
        q = question(cfg.task, spec)
        if q not in seen:
            seen.add(q)
            rows.append({"question": q, "gold_answer": program(cfg.task, spec), "spec": spec})
    rng.shuffle(rows)
    train = [{"id": f"{cfg.task}-train-{i:05d}", **r} for i, r in enumerate(rows[:cfg.n_train])]
    test = [{"id": f"{cfg.task}-test-{i:05d}", **r} for i, r in enumerate(rows[cfg.n_train:])]
    return train, test


def split_paths(root: str | Path, task: str) -> dict[str, Path]:
    root = Path(root)
    return {"train": root / task / "train" / "train.jsonl", "test": root / task / "test" / "test.jsonl"}


def write_formal_splits(root: str | Path, cfg: FormalGenConfig) -> dict[str, Path]:
    """Generate and atomically write the train/test splits under ``root``; return their paths."""
    train, test = generate(cfg)
    paths = split_paths(root, cfg.task)
    atomic_write_jsonl(paths["train"], train)
    atomic_write_jsonl(paths["test"], test)
    return paths
