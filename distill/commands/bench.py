"""``distill bench``: the benchmark suite (``bench/bench_suite.py``: one table, or with ``--json`` one JSON
object, of every CPU figure with its target and inputs), or the named benchmark scripts (``bench/bench_*.py``).

The checkout's ``bench/`` is found from the current folder upwards, or given with ``--bench_dir``.
The work is :mod:`distill.benchmarks`.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: the suite, or every script when the "
                                                 "checkout has no bench_suite.py); see --list")
    parser.add_argument("--quick", action="store_true", help="small sizes (the suite: < 10 min on 2 cores)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout (every figure, its target and inputs, the machine)")
    parser.add_argument("--only", default=None, metavar="GROUPS",
                        help="the suite's groups, comma-separated: prompting,verify,formal,padding,training,trl,memory")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--args", default="", metavar="'FLAGS'",
                        help="flags passed to each benchmark script, e.g. --args '--quick --json' for ablation")
    parser.add_argument("--bench_dir", "--bench-dir", default=None,
                        help="folder holding bench_*.py (default: bench/ in the current folder or a parent)")


def run(args: argparse.Namespace) -> int:
    from distill.benchmarks import available, find_bench_dir, run_benchmarks, suite_flags

    bench_dir = find_bench_dir(args.bench_dir)
    if args.list:
        print("\n".join(available(bench_dir)))
        return 0
    import shlex

    flags = suite_flags(args.quick, args.json, args.only) + shlex.split(args.args)
    failed = run_benchmarks(bench_dir, args.names, flags, quiet=args.json)
    if failed:
        print(f"benchmarks that missed their target: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
