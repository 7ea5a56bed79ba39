"""``distill report RUN``: (re)write a run's ``report.md`` and its PNGs from the run folder.

Training writes the report when it ends; run this after ``distill eval`` (or on a copied run folder)
to bring it up to date. The work is :func:`distill.train.report.write_report`; no torch import.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="training output folder (holds metrics.jsonl)")


def run(args: argparse.Namespace) -> int:
    from distill.train.report import PNGS, write_report

    out = write_report(args.run)
    pngs = [name for name in PNGS.values() if (out.parent / name).is_file()]
    print(f"report written to {out}" + (f" (plots: {', '.join(pngs)})" if pngs else " (no plots)"))
    return 0
