"""``distill bench``: run the benchmark scripts (``bench/bench_*.py``) of a distill checkout.

The checkout's ``bench/`` is found from the current folder upwards, or given with ``--bench_dir``.
The work is :mod:`distill.benchmarks`.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all); see --list")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--args", default="", metavar="'FLAGS'",
                        help="flags passed to each benchmark script, e.g. --args '--quick --json' for ablation")
    parser.add_argument("--bench_dir", "--bench-dir", default=None,
                        help="folder holding bench_*.py (default: bench/ in the current folder or a parent)")


def run(args: argparse.Namespace) -> int:
    from distill.benchmarks import available, find_bench_dir, run_benchmarks

    bench_dir = find_bench_dir(args.bench_dir)
    if args.list:
        print("\n".join(available(bench_dir)))
        return 0
    import shlex

    failed = run_benchmarks(bench_dir, args.names, shlex.split(args.args))
    if failed:
        print(f"benchmarks that missed their target: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
