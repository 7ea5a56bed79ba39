"""Benchmark: batch-verify GSM8K-style answers; target >= 500 answers/s on 2 cores.

Responses are built from real GSM8K test solutions (/work/shared/datasets/gsm8k/test.jsonl):
calculator notes ``<<...>>`` stripped and the closing ``#### N`` turned into
"The answer is \\boxed{N}." (right), kept as ``#### N`` (right, no box), or replaced by
"The answer is N+1." (wrong). Every verdict is checked, so speed cannot come from wrong answers.

The gated number is the *cold* rate: it includes starting the worker pool (interpreters +
math-verify import). The warm rate (pool reused) is printed too. MATH-500 solutions (LaTeX,
math-verify path) are timed for information only.

    .venv/bin/python bench/bench_verify.py [--workers 2] [--target 500]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.verify.batch import score_batch, shutdown  # noqa: E402

DATA = Path("/work/shared/datasets")


def gsm8k_items(path: Path) -> tuple[list[tuple[str, dict]], list[bool]]:
    items, expect = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            sol = re.sub(r"<<[^>]*>>", "", row["solution"]).strip()
            right = re.sub(r"####\s*(.+)$", r"The answer is \\boxed{\1}.", sol)
            wrong = re.sub(r"####\s*(.+)$", lambda m: f"The answer is {int(row['gold_answer']) + 1}.", sol)
            for resp, ok in ((right, True), (sol, True), (wrong, False)):
                items.append((resp, row))
                expect.append(ok)
    return items, expect


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--target", type=float, default=500.0, help="answers/s the cold run must reach")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()

    items, expect = gsm8k_items(args.data / "gsm8k" / "test.jsonl")
    t = time.perf_counter()
    cold = score_batch("gsm8k", items, workers=args.workers, timeout=5.0)
    cold_s = time.perf_counter() - t
    t = time.perf_counter()
    warm = score_batch("gsm8k", items, workers=args.workers, timeout=5.0)
    warm_s = time.perf_counter() - t
    wrong = [i for i, (v, e) in enumerate(zip(cold.verdicts, expect)) if v.correct != e]
    wrong += [i for i, (v, e) in enumerate(zip(warm.verdicts, expect)) if v.correct != e]
    n = len(items)
    cold_rate, warm_rate = n / cold_s, n / warm_s
    print(f"gsm8k: {n} answers ({sum(expect)} right, {n - sum(expect)} wrong), workers={args.workers}")
    print(f"  cold (pool start + math-verify import included): {cold_s:.2f}s  {cold_rate:,.0f} answers/s")
    print(f"  warm (persistent pool):                           {warm_s:.2f}s  {warm_rate:,.0f} answers/s")
    print(f"  timeouts {cold.timeouts + warm.timeouts}, errors {cold.errors + warm.errors}, "
          f"wrong verdicts {len(wrong)}")

    math_path = args.data / "math" / "test.jsonl"
    if math_path.exists():
        # another row's gold answer as the prediction: textually different, so math-verify must decide
        rows = [json.loads(line) for line in math_path.read_text(encoding="utf-8").splitlines()]
        pairs = [(f"The answer is $\\boxed{{{rows[(i + 1) % len(rows)]['gold_answer']}}}$.", r)
                 for i, r in enumerate(rows)]
        res = score_batch("math", pairs, workers=args.workers, timeout=5.0)
        print(f"math-500 other-row answers (LaTeX, math-verify path, info only): {len(rows)} in {res.seconds:.2f}s "
              f"({len(rows) / res.seconds:,.0f}/s), {res.correct} judged equal, {res.timeouts} timeouts")
    shutdown()

    ok = cold_rate >= args.target and not wrong and cold.timeouts == 0
    print(f"target >= {args.target:.0f} answers/s (cold) with every verdict right: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
