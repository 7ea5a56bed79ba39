"""Benchmark: how long the caller waits on verifiers that hang (the hard timeouts' wall-clock cost).

Moved out of the unit tests (tests/test_verify_solvers.py, tests/test_verify_batch.py), which assert
the behaviour (killed at the deadline, counted as a timeout) but no longer time it. Targets:

- ``run_asp`` on a program whose grounding never ends (~1e15 atoms; clingo ignores signals while
  grounding), ``timeout=1``: returns within ``--asp-target`` s (default 5), i.e. the child is killed
  at the deadline, not after clingo's own limit or never;
- ``score`` on one response carrying 5 such programs: within ``--response-target`` s (default the
  response budget ``RESPONSE_SOLVER_BUDGET_S`` + 1.5), not 3 s per block;
- ``score_batch`` (2 workers, warm pool, ``timeout=1``) over 6 ordinary answers, that clingo program
  and a LaTeX power tower SymPy spins on: done within ``--batch-target`` s (default 8), i.e. about
  the 1 s deadline plus starting replacement workers, not clingo's 3 s or math-verify's 2 s per item.

Every verdict is checked too, so speed cannot come from skipping the hung items.

    .venv/bin/python bench/bench_verify_timeout.py [--asp-target 5 --batch-target 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.verify import NA, Verdict, score  # noqa: E402
from distill.verify.batch import score_batch, shutdown  # noqa: E402
from distill.verify.solvers import RESPONSE_SOLVER_BUDGET_S, run_asp  # noqa: E402

ASP_BLOWUP = "n(1..100000).\np(X,Y,Z) :- n(X), n(Y), n(Z).\nanswer(1)."
HANG = f"```asp\n{ASP_BLOWUP}\n```"
LATEX_HANG = r"The answer is \boxed{9^{9^{9^{9}}}}."


def ordinary(n: int) -> list[tuple[str, dict]]:
    return [(f"We add things up. The answer is \\boxed{{{i * 3 if i % 3 else i * 3 + 1}}}.", {"gold_answer": str(i * 3)})
            for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--asp-target", type=float, default=5.0, help="max seconds for run_asp(timeout=1) on a blow-up")
    ap.add_argument("--batch-target", type=float, default=8.0, help="max seconds for the hung score_batch")
    ap.add_argument("--response-target", type=float, default=RESPONSE_SOLVER_BUDGET_S + 1.5,
                    help="max seconds for score() on one response with 5 hung solver blocks")
    args = ap.parse_args()

    many = "Try the program.\n" + (HANG + "\n") * 5 + "I could not finish."
    t = time.perf_counter()
    v = score("gsm8k", many, {"gold_answer": "1"})
    many_s = time.perf_counter() - t
    many_ok = many_s < args.response_target and v.correct is False
    print(f"score(), one response with 5 hung ASP blocks (3 s each): {many_s:.2f} s  "
          f"target < {args.response_target:g} s (the {RESPONSE_SOLVER_BUDGET_S:g} s response budget): "
          f"{'PASS' if many_ok else 'FAIL'}")

    t = time.perf_counter()
    asp = run_asp(ASP_BLOWUP, timeout=1.0)
    asp_s = time.perf_counter() - t
    asp_ok = asp_s < args.asp_target and not asp.ok and "timed out" in (asp.error or "")
    print(f"run_asp grounding blow-up, timeout 1 s: {asp_s:.2f} s ({asp.error})  "
          f"target < {args.asp_target:g} s: {'PASS' if asp_ok else 'FAIL'}")

    t = time.perf_counter()
    score_batch("gsm8k", ordinary(2), workers=2, timeout=1.0)  # warm the pool: start-up is not what we time
    print(f"worker pool start (2 workers, info only): {time.perf_counter() - t:.2f} s")
    items = ordinary(6)
    items.insert(2, (HANG, {"gold_answer": "1"}))
    items.append((LATEX_HANG, {"gold_answer": "1"}))
    t = time.perf_counter()
    res = score_batch("gsm8k", items, workers=2, timeout=1.0)
    batch_s = time.perf_counter() - t
    shutdown()
    want = [score("gsm8k", r, row) for r, row in items[:-1]]
    want[2] = Verdict(NA, False)
    right = res.verdicts[:-1] == want and res.verdicts[-1].correct is False and res.timeouts >= 1
    batch_ok = batch_s < args.batch_target and right
    print(f"score_batch, {len(items)} items incl. 2 hung, timeout 1 s: {batch_s:.2f} s, {res.timeouts} timeouts, "
          f"verdicts {'right' if right else 'WRONG'}  target < {args.batch_target:g} s: {'PASS' if batch_ok else 'FAIL'}")
    return 0 if asp_ok and batch_ok and many_ok else 1


if __name__ == "__main__":
    sys.exit(main())
