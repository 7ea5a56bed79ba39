"""Benchmark: formal-language verdicts per second with the real solvers; target >= 50/s on 2 cores.

One section per language (``--language``; all by default). Each section builds ~50 small
candidate/reference pairs whose expected verdict is known (equivalent rewrites, wrong programs,
invalid programs), verifies them with ``workers`` threads (every solver run is a child process, so
threads overlap them) and checks every verdict, so speed cannot come from wrong answers.

- ``dot``: random small digraphs/graphs (4-8 nodes, 4-12 edges, some labels). Candidates: the
  reference with statements shuffled and ids renamed (labels kept) -> correct; one edge reversed
  or dropped -> incorrect; ``--`` in a digraph -> invalid. "cold": every reference distinct (two
  ``dot`` runs per verdict); "warm": 4 candidates per reference (the reference's graph is cached).
- ``asp``: 13 small typical problems (colouring, reachability, knapsack with ``#maximize``,
  n-queens), 4 candidates each: alpha-renamed reference / helper-predicate or other-optimisation
  rewrite -> correct; other answer sets or no optimisation -> incorrect; a repair corruption ->
  invalid. Gated, as for ``smt``: that mix (one clingo run per candidate, each reference runs
  once). "cold" (reference cache off: two clingo runs per verdict, side by side) and the CPU cost
  per verdict (independent of what else the machine runs) are printed for information.
- ``smt``: ~50 small typical SMT-LIB2 pairs over 13 problems (linear systems, task orderings,
  bit-vectors, pigeonhole unsat), 3-4 candidates per reference (the reference itself, a rewrite:
  helper constant / define-fun / reordered / ``and`` split / pairwise ``distinct``; a wrong
  constraint; an invalid program). Gated: that mix (one ``z3`` process per candidate, the two
  implication checks ride in it; each reference runs once). "cold" (reference cache cleared
  before every verdict: two processes each) is printed for information.

    .venv/bin/python bench/bench_formal.py [--language dot] [--workers 2] [--target 50]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.verify.formal import verify_program  # noqa: E402


# ---------------------------------------------------------------- dot
def _dot_program(directed: bool, nodes: list[str], labels: dict[str, str], edges: list[tuple[str, str]],
                 rng: random.Random, rename: dict[str, str] | None = None) -> str:
    rename = rename or {n: n for n in nodes}
    arrow = "->" if directed else "--"
    stmts = [f'{rename[n]} [label="{labels.get(n, n)}"]' for n in nodes]
    stmts += [f"{rename[a]} {arrow} {rename[b]}" for a, b in edges]
    rng.shuffle(stmts)
    return ("digraph" if directed else "graph") + " G {\n  " + ";\n  ".join(stmts) + ";\n}\n"


def dot_cases(n_refs: int, per_ref: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``(candidate, reference, expected)`` with expected one of correct / incorrect / invalid."""
    rng = random.Random(seed)
    cases = []
    kinds = ["correct", "incorrect", "invalid", "correct"]
    for r in range(n_refs):
        directed = r % 3 != 0
        nodes = [f"n{i}" for i in range(rng.randint(4, 8))]
        labels = {n: f"step {i}" for i, n in enumerate(nodes) if rng.random() < 0.6}
        edges = list({(a, b) for a, b in ((rng.choice(nodes), rng.choice(nodes)) for _ in range(rng.randint(4, 12)))
                      if a != b})
        ref = _dot_program(directed, nodes, labels, edges, rng)
        for k in range(per_ref):
            kind = kinds[(r + k) % len(kinds)]
            rename = {n: f"v{i}" for i, n in enumerate(rng.sample(nodes, len(nodes)))}
            if kind == "correct":
                cand = _dot_program(directed, nodes, labels, edges, rng, rename)
            elif kind == "incorrect":
                if directed:  # reverse an edge whose reverse is not already there (so the graph changes)
                    a, b = next(e for e in edges if (e[1], e[0]) not in edges)
                    bad = [e if e != (a, b) else (b, a) for e in edges]
                else:
                    bad = edges[1:]
                # labels kept so only the structure differs
                cand = _dot_program(directed, nodes, {n: labels.get(n, n) for n in nodes}, bad, rng, rename)
            else:
                cand = _dot_program(True, nodes, labels, edges, rng).replace("->", "--", 1)
            cases.append((cand, ref, kind))
    return cases


def _verdict_kind(v) -> str:
    return "correct" if v.correct else "incorrect" if v.valid else "invalid"


def _run(language: str, cases, workers: int) -> tuple[float, list[int], int]:
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = list(pool.map(lambda c: verify_program(language, c[0], c[1]), cases))
    secs = time.perf_counter() - t
    wrong = [i for i, (v, c) in enumerate(zip(verdicts, cases)) if _verdict_kind(v) != c[2]]
    return secs, wrong, sum(v.timed_out for v in verdicts)


def bench_dot(workers: int, target: float) -> bool:
    from distill.verify.formal import dot

    t = time.perf_counter()  # one-off per process: the private plugin folder, the networkx import
    assert verify_program("dot", "digraph { a -> b }", "digraph { x [label=a]; y [label=b]; x -> y }").correct
    print(f"dot first verdict (plugin folder + imports): {time.perf_counter() - t:.2f}s; "
          f"private plugins: {dot._plugin_env(shutil.which('dot')) is not None}")
    cold = dot_cases(50, 1, seed=1)
    warm = dot_cases(13, 4, seed=2)
    ok = True
    for name, cases, gated in (("cold (distinct references)", cold, True),
                               ("warm (4 candidates per reference)", warm, False)):
        for w in sorted({1, workers}):
            dot._ref_cache.clear()
            secs, wrong, timeouts = _run("dot", cases, w)
            rate = len(cases) / secs
            passed, mark = _verdict(rate, target, wrong, timeouts, gated and w == workers)
            ok = ok and passed
            print(f"dot {name}: {len(cases)} verdicts, workers={w}: {secs:.2f}s {rate:,.0f} verdicts/s, "
                  f"wrong verdicts {len(wrong)}, timeouts {timeouts}{mark}")
    return ok


def _verdict(rate: float, target: float, wrong, timeouts: int, gated: bool) -> tuple[bool, str]:
    """(passed, mark): a wrong verdict or a timeout always fails; the gated row must also reach the
    target rate."""
    if gated:
        return rate >= target and not wrong and not timeouts, "  <- gated"
    return not (wrong or timeouts), ""


# ---------------------------------------------------------------- smt
def smt_cases() -> list[tuple[str, str, str]]:
    """``(candidate, reference, expected)`` with expected one of correct / incorrect / invalid."""
    out: list[tuple[str, str, str]] = []
    for k in range(1, 6):  # linear: x + y = 10k, x - y = 2k, get-value
        ref = (f"(declare-const x Int)\n(declare-const y Int)\n(assert (= (+ x y) {10 * k}))\n"
               f"(assert (= (- x y) {2 * k}))\n(check-sat)\n(get-value (x y))\n")
        rewrite = (f"(declare-const y Int)\n(declare-const x Int)\n(define-fun d () Int (- x y))\n"
                   f"(assert (and (= d {2 * k}) (= (+ y x) {10 * k})))\n(check-sat)\n(get-model)\n")
        wrong = ref.replace(f"(= (- x y) {2 * k})", f"(>= (- x y) {2 * k})")
        broken = ref.replace("(assert (= (+ x y)", "(assert (= (+ x z)")
        out += [(ref, ref, "correct"), (rewrite, ref, "correct"), (wrong, ref, "incorrect"), (broken, ref, "invalid")]
    for k in range(3, 6):  # k tasks, each starting 2 after the previous, all done by 2k
        decls = "".join(f"(declare-const t{i} Int)\n" for i in range(k))
        chain = "".join(f"(assert (>= t{i + 1} (+ t{i} 2)))\n" for i in range(k - 1))
        ref = decls + "(assert (>= t0 0))\n" + chain + f"(assert (<= t{k - 1} {2 * k}))\n(check-sat)\n"
        helper = (decls + "(declare-const last Int)\n" + f"(assert (= last t{k - 1}))\n" + chain
                  + "(assert (<= 0 t0))\n" + f"(assert (<= last {2 * k}))\n(check-sat)\n")
        wrong = ref.replace(f"(<= t{k - 1} {2 * k})", f"(<= t{k - 1} {2 * k + 1})")
        out += [(ref, ref, "correct"), (helper, ref, "correct"), (wrong, ref, "incorrect")]
    for k in (3, 5, 7):  # bit-vectors: x * k = 1 (mod 256)
        ref = (f"(declare-const x (_ BitVec 8))\n(assert (= (bvmul x (_ bv{k} 8)) (_ bv1 8)))\n"
               "(check-sat)\n(get-value (x))\n")
        swapped = ref.replace(f"(bvmul x (_ bv{k} 8))", f"(bvmul (_ bv{k} 8) x)")
        nonbool = ref.replace("(assert (= (bvmul", "(assert (bvadd (bvmul")
        out += [(ref, ref, "correct"), (swapped, ref, "correct"), (nonbool, ref, "invalid")]
    for n in (3, 4):  # pigeonhole: n+1 pigeons in n holes is unsat
        decls = "".join(f"(declare-const p{i} Int)\n" for i in range(n + 1))
        rng = "".join(f"(assert (and (>= p{i} 1) (<= p{i} {n})))\n" for i in range(n + 1))
        ref = decls + rng + "(assert (distinct " + " ".join(f"p{i}" for i in range(n + 1)) + "))\n(check-sat)\n"
        pairwise = decls + rng + "".join(f"(assert (not (= p{i} p{j})))\n" for i in range(n + 1)
                                         for j in range(i + 1, n + 1)) + "(check-sat)\n"
        sat_wrong = ref.replace(f"(<= p0 {n})", f"(<= p0 {n + 1})")
        out += [(ref, ref, "correct"), (pairwise, ref, "correct"), (sat_wrong, ref, "incorrect")]
    return out


def bench_smt(workers: int, target: float) -> bool:
    from distill.verify.formal import smt

    cases = smt_cases()
    ok = True
    for w in sorted({1, workers}):
        smt._REF_CACHE.clear()
        secs, wrong, timeouts = _run("smt", cases, w)
        rate = len(cases) / secs
        mark = ""
        if w == workers:
            passed = rate >= target and not wrong and not timeouts
            ok = ok and passed
            mark = "  <- gated"
        elif wrong or timeouts:
            ok = False
        print(f"smt typical mix ({len(cases)} pairs, 3-4 per reference): workers={w}: {secs:.2f}s "
              f"{rate:,.0f} verdicts/s, wrong verdicts {len(wrong)}, timeouts {timeouts}{mark}")
    # CPU per verdict (Z3 in the pooled processes + this process): what the rate is on idle cores
    def z3_cpu() -> float:
        ticks = 0
        for z in list(smt._POOL):
            try:
                ticks += sum(int(x) for x in open(f"/proc/{z.proc.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
            except (OSError, ValueError):
                pass
        return ticks / os.sysconf("SC_CLK_TCK")

    smt._close_pool()
    for cand, ref, _ in cases[:4]:  # one pooled process, references cached, warm
        verify_program("smt", cand, ref)
    c0, p0, t0 = z3_cpu(), time.process_time(), time.perf_counter()
    for cand, ref, _ in cases:
        verify_program("smt", cand, ref)
    cpu = (z3_cpu() - c0 + time.process_time() - p0) / len(cases)
    print(f"smt CPU per verdict (references cached, workers=1): {1000 * cpu:.1f} ms "
          f"(wall {1000 * (time.perf_counter() - t0) / len(cases):.1f} ms) -> about {workers / cpu:,.0f} verdicts/s "
          f"on {workers} idle cores")
    t = time.perf_counter()
    cold_wrong = 0
    for cand, ref, kind in cases:  # cold, one at a time: the reference's own run every time
        smt._REF_CACHE.clear()
        cold_wrong += _verdict_kind(verify_program("smt", cand, ref)) != kind
    secs = time.perf_counter() - t
    print(f"smt cold (reference rerun for every verdict), workers=1: {len(cases) / secs:,.0f} verdicts/s, "
          f"wrong verdicts {cold_wrong}")
    return ok and not cold_wrong


# ---------------------------------------------------------------- asp
def asp_cases(seed: int = 0) -> list[tuple[str, str, str]]:
    """``(candidate, reference, expected)``: 13 small typical problems (graph colouring,
    reachability, knapsack with ``#maximize``, n-queens), 4 candidates each: the reference with its
    variables alpha-renamed (correct), a rewrite with other helper predicates / another optimisation
    syntax (correct), a wrong one (other answer sets, or no optimisation) and an invalid one (a
    repair-pair corruption: missing period, ``if``, ``{{``, ``maximize`` without ``#``)."""
    from distill.verify.formal.asp_rename import rename_variables

    rng = random.Random(seed)
    out: list[tuple[str, str, str]] = []
    for r in range(4):  # 3-colouring of a random connected graph on 5-6 nodes
        n = 5 + r % 2
        edges = sorted({(i, rng.randint(1, i - 1)) for i in range(2, n + 1)} |
                       {tuple(sorted(rng.sample(range(1, n + 1), 2), reverse=True)) for _ in range(2)})
        inst = f"node(1..{n}).\n" + " ".join(f"edge({a},{b})." for a, b in edges) + "\ncol(r;g;b).\n"
        ref = inst + "1 { colour(N,C) : col(C) } 1 :- node(N).\n:- edge(X,Y), colour(X,C), colour(Y,C).\n#show colour/2.\n"
        helper = inst + ("{ colour(N,C) : col(C) } = 1 :- node(N).\nclash(X) :- edge(X,Y), colour(X,C), colour(Y,C).\n"
                         ":- clash(X).\n")
        wrong = ref + ":- colour(1,r).\n"
        broken = ref.rstrip().rstrip(".")
        out += [(rename_variables(ref, r), ref, "correct"), (helper, ref, "correct"), (wrong, ref, "incorrect"),
                (broken, ref, "invalid")]
    for r in range(3):  # reachability in a chain with shortcuts
        n = 5 + r
        inst = " ".join(f"edge({i},{i + 1})." for i in range(1, n)) + f" edge({n},{rng.randint(1, n - 1)}).\n"
        ref = inst + "reach(X,Y) :- edge(X,Y).\nreach(X,Z) :- reach(X,Y), edge(Y,Z).\n#show reach/2.\n"
        other = inst + "reach(X,Y) :- edge(X,Y).\nreach(X,Z) :- edge(X,Y), reach(Y,Z).\n#show reach/2.\n"
        wrong = inst + "reach(X,Y) :- edge(X,Y).\nreach(X,Z) :- edge(X,Y), edge(Y,Z).\n#show reach/2.\n"
        out += [(rename_variables(ref, r), ref, "correct"), (other, ref, "correct"), (wrong, ref, "incorrect"),
                (ref.replace(":-", " if ", 1), ref, "invalid")]
    for r in range(4):  # knapsack: maximise the weight under a capacity
        items = " ".join(f"item(i{k},{rng.randint(1, 9)})." for k in range(5))
        cap = 10 + r
        core = items + "\n{ in(I) : item(I,W) }.\n" + f":- #sum {{ W,I : in(I), item(I,W) }} > {cap}.\n"
        ref = core + "#maximize { W,I : in(I), item(I,W) }.\n#show in/1.\n"
        weak = core + ":~ item(I,W), not in(I). [W@0,I]\n#show in/1.\n"
        out += [(rename_variables(ref, r), ref, "correct"), (weak, ref, "correct"),
                (core + "#show in/1.\n", ref, "incorrect"), (ref.replace("#maximize", "maximize"), ref, "invalid")]
    for n in (4, 5):  # n-queens
        ref = (f"row(1..{n}).\n1 {{ q(R,C) : row(C) }} 1 :- row(R).\n:- q(R1,C), q(R2,C), R1 < R2.\n"
               ":- q(R1,C1), q(R2,C2), R1 < R2, |R1-R2| = |C1-C2|.\n#show q/2.\n")
        helper = (f"row(1..{n}).\n1 {{ q(R,C) : row(C) }} 1 :- row(R).\n1 {{ q(R,C) : row(R) }} 1 :- row(C).\n"
                  "diag(R1,C1) :- q(R1,C1), q(R2,C2), R1 != R2, |R1-R2| = |C1-C2|.\n:- diag(R,C).\n")
        wrong = ref.replace(":- q(R1,C1), q(R2,C2), R1 < R2, |R1-R2| = |C1-C2|.\n", "")
        out += [(rename_variables(ref, n), ref, "correct"), (helper, ref, "correct"), (wrong, ref, "incorrect"),
                (ref.replace("{", "{{", 1), ref, "invalid")]
    return out


def bench_asp(workers: int, target: float) -> bool:
    from distill.verify.formal import asp

    cases = asp_cases()
    ok = True
    for name, clear, gated in (("cold (reference rerun for every verdict)", True, False),
                               ("typical mix (4 candidates per reference, reference cached)", False, True)):
        for w in sorted({1, workers}):
            asp._REF_CACHE.clear()
            if clear:
                asp._REF_CACHE_SIZE, size = 0, asp._REF_CACHE_SIZE
            before = _cpu()
            try:
                secs, wrong, timeouts = _run("asp", cases, w)
            finally:
                cpu = (_cpu() - before) / len(cases)
                if clear:
                    asp._REF_CACHE_SIZE = size
            rate = len(cases) / secs
            passed, mark = _verdict(rate, target, wrong, timeouts, gated and w == workers)
            ok = ok and passed
            print(f"asp {name}: {len(cases)} verdicts, workers={w}: {secs:.2f}s {rate:,.0f} verdicts/s, "
                  f"wrong verdicts {len(wrong)} {wrong[:5]}, timeouts {timeouts}{mark}; "
                  f"CPU {cpu * 1000:.1f} ms/verdict (this process + clingo children) = "
                  f"{w / cpu:,.0f} verdicts/s on {w} idle core(s)")
    return ok


def _cpu() -> float:
    """CPU seconds used so far by this process and its reaped children: the wall rate depends on
    what else the machine runs, this does not."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


SECTIONS = {"asp": bench_asp, "dot": bench_dot, "smt": bench_smt}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--language", choices=sorted(SECTIONS), action="append",
                    help="section(s) to run (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--target", type=float, default=50.0, help="verdicts/s (cold, --workers) each must reach")
    args = ap.parse_args()
    failed = [lang for lang in (args.language or sorted(SECTIONS)) if not SECTIONS[lang](args.workers, args.target)]
    print(f"target >= {args.target:.0f} verdicts/s with every verdict right: "
          f"{'PASS' if not failed else 'FAIL (' + ', '.join(failed) + ')'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
