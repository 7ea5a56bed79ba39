"""Benchmarks (``distill bench``): the ``bench/bench_*.py`` scripts of a distill checkout.

Benchmarks hold the speed and memory targets (unit tests do not time things). Each
``bench/bench_*.py`` is a standalone script that prints its measurements and exits
non-zero when it misses its target. They belong to the checkout, not to the installed
package, so they are found from the current folder (or an explicit folder).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from distill.errors import DistillError

PATTERN = "bench_*.py"
#: The suite runner (``bench/bench_suite.py``): what ``distill bench`` runs when no benchmark is named.
SUITE = "suite"


def find_bench_dir(bench_dir: str | Path | None = None, cwd: str | Path | None = None) -> Path:
    """``bench_dir`` if given, else the first ``bench/`` holding ``bench_*.py`` in ``cwd`` or a parent
    of it. Raises a one-line DistillError when there is none."""
    if bench_dir is not None:
        d = Path(bench_dir)
        if not d.is_dir() or not any(d.glob(PATTERN)):
            raise DistillError(f"--bench_dir {d}: no {PATTERN} scripts there")
        return d
    start = Path(cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        d = folder / "bench"
        if d.is_dir() and any(d.glob(PATTERN)):
            return d
    raise DistillError(f"no bench/ folder with {PATTERN} scripts in {start} or its parents: benchmarks ship "
                       "with the distill checkout; run from it or pass --bench_dir DIR")


def available(bench_dir: Path) -> list[str]:
    """Benchmark names (``bench_verify.py`` -> ``verify``), sorted."""
    return sorted(p.stem.removeprefix("bench_") for p in bench_dir.glob(PATTERN))


def default_selection(bench_dir: Path) -> list[str]:
    """What runs when no benchmark is named: the suite (one table of every figure) when the checkout has
    one, else every script."""
    known = available(bench_dir)
    return [SUITE] if SUITE in known else known


def suite_flags(quick: bool = False, as_json: bool = False, only: str | None = None) -> list[str]:
    """The suite runner's flags for ``distill bench --quick --json --only GROUPS``."""
    return [*(["--quick"] if quick else []), *(["--json"] if as_json else []), *(["--only", only] if only else [])]


def run_benchmarks(bench_dir: Path, names: list[str] | None = None, script_args: list[str] | None = None,
                   quiet: bool = False) -> list[str]:
    """Run the named benchmarks (default: :func:`default_selection`) one after another, each with
    ``script_args`` (e.g. ``["--quick"]``); returns the ones that missed their target (non-zero exit).
    Unknown names fail before anything runs. ``quiet``: the ``== bench NAME`` headers go to stderr (so
    ``--json`` output stays one JSON object on stdout)."""
    known = available(bench_dir)
    chosen = names or default_selection(bench_dir)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise DistillError(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(known)}")
    failed = []
    for name in chosen:
        print(f"== bench {name}", flush=True, file=sys.stderr if quiet else sys.stdout)
        if subprocess.call([sys.executable, str(bench_dir / f"bench_{name}.py"), *(script_args or [])]):
            failed.append(name)
    return failed
