"""``distill bench``: run the benchmark scripts under ``bench/``.

Benchmarks hold the speed and memory targets (unit tests do not time things). Each
``bench/bench_*.py`` is a standalone script that prints its measurements and exits
non-zero when it misses its target.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all); see --list")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")


def run(args: argparse.Namespace) -> int:
    from distill.errors import DistillError

    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    chosen = args.names or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise DistillError(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}")
    failed = []
    for name in chosen:
        print(f"== bench {name}", flush=True)
        rc = subprocess.call([sys.executable, str(BENCH_DIR / f"bench_{name}.py")])
        if rc:
            failed.append(name)
    if failed:
        print(f"benchmarks that missed their target: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
