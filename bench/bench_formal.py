"""Benchmark: formal-language verdicts per second with the real solvers; target >= 50/s on 2 cores.

One section per language (``--language``; all by default). Each section builds ~50 small
candidate/reference pairs whose expected verdict is known (equivalent rewrites, wrong programs,
invalid programs), verifies them with ``workers`` threads (every solver run is a child process, so
threads overlap them) and checks every verdict, so speed cannot come from wrong answers.

- ``dot``: random small digraphs/graphs (4-8 nodes, 4-12 edges, some labels). Candidates: the
  reference with statements shuffled and ids renamed (labels kept) -> correct; one edge reversed
  or dropped -> incorrect; ``--`` in a digraph -> invalid. "cold": every reference distinct (two
  ``dot`` runs per verdict); "warm": 4 candidates per reference (the reference's graph is cached).

    .venv/bin/python bench/bench_formal.py [--language dot] [--workers 2] [--target 50]
"""

from __future__ import annotations

import argparse
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
            mark = ""
            if gated and w == workers:
                passed = rate >= target and not wrong and not timeouts
                ok = ok and passed
                mark = "  <- gated"
            elif wrong or timeouts:
                ok = False
            print(f"dot {name}: {len(cases)} verdicts, workers={w}: {secs:.2f}s {rate:,.0f} verdicts/s, "
                  f"wrong verdicts {len(wrong)}, timeouts {timeouts}{mark}")
    return ok


SECTIONS = {"dot": bench_dot}


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
