"""``distill augment``: training data for the formal tasks from valid programs.

``--kind repair`` (default) writes repair pairs: each valid program corrupted by each applicable
operator, kept only when the real solver rejects it, with its real error message; ``--kind rename``
(ASP) writes alpha-renamed variants kept only when they keep the answer sets. The work is
:func:`distill.verify.formal.augment_files.augment_file`; no torch is imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="a formal task: smt, asp or dot")
    parser.add_argument("--input", type=Path, required=True,
                        help="source rows with gold_answer programs, or a *.correct.jsonl file (its correct "
                             "paths' programs are used too; questions come from --source)")
    parser.add_argument("--out", type=Path, required=True, help="output JSONL (written atomically)")
    parser.add_argument("--source", type=Path, default=None, help="source rows giving the questions of a correct file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruption / renaming choices")
    parser.add_argument("--kind", choices=("repair", "rename"), default="repair",
                        help="repair pairs, or (asp) verified alpha-renamed variants")
    parser.add_argument("--workers", type=int, default=2, help="solver calls at a time")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per solver call")
    parser.add_argument("--template-baseline", action="store_true",
                        help="also report how many broken programs the deterministic template repair fixes")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")


def run(args: argparse.Namespace) -> int:
    from distill.verify.formal.augment_files import augment_file

    report = augment_file(args.task, args.input, args.out, seed=args.seed, kind=args.kind, source=args.source,
                          workers=args.workers, timeout=args.timeout, baseline=args.template_baseline,
                          progress=args.progress)
    print(report.format())
    print(f"wrote {report.written} rows to {args.out}")
    return 0
