"""``distill regen-correct``: re-score enriched teacher logs with the current verifiers.

The work is :func:`distill.verify.regen.regen_correct` (all-or-nothing: every file is validated
before any is rewritten). No torch is imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from distill.data.tasks import TASKS

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--root", type=Path, help="output root: every *.enriched.jsonl under ROOT/<task>/ (recursively)")
    src.add_argument("--input", type=Path, help="one FILE.enriched.jsonl to re-score")
    parser.add_argument("--dataset", default=None,
                        help=f"task name ({', '.join(TASKS)}) or 'all' (with --root); "
                             "with --input it defaults to the task named by a parent folder")
    parser.add_argument("--workers", type=int, default=None, help="verifier processes (default: CPU count)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="hard per-path verification timeout, seconds (default 5; 22 for smt, asp and dot, "
                             "whose verification makes several solver calls)")
    parser.add_argument("--progress", action="store_true", help="(the default; --no-progress turns bars off)")


def run(args: argparse.Namespace) -> int:
    from distill.verify.regen import regen_correct

    report = regen_correct(root=args.root, input=args.input, dataset=args.dataset, workers=args.workers,
                           timeout=args.timeout, progress=True)  # bars unless --no-progress; the summary line always
    print(report.format())
    return 0
