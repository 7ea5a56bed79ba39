"""``distill judge``: keep the verified-correct paths whose reasoning a judge model finds sound.

The work is :func:`distill.prompting.judge.run_judge` (see that module for why and how).
"""

from __future__ import annotations

import argparse

from distill.commands._teacher import add_cost_arguments, add_transport_arguments, cost_options, source_selection, \
    teacher_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_transport_arguments(parser, default_model="gpt-4o-mini")
    parser.add_argument("--max-tokens", type=int, default=512, help="max judge tokens (default 512)")
    parser.add_argument("--temperature", type=float, default=0.0, help="judge temperature (default 0)")
    add_cost_arguments(parser)
    parser.epilog = ("Reads <stem>.enriched.jsonl under <root>/<task>/ (or --input); writes <stem>.judged.jsonl. "
                     "Example: distill judge --root ./data --dataset gsm8k --model gpt-4o --max-spend 1. "
                     "Exit status 1 when a judge request failed or --max-spend stopped the run.")


def run(args: argparse.Namespace) -> int:
    from distill.prompting.judge import run_judge

    report = run_judge(teacher_options(args), source_selection(args), temperature=args.temperature,
                       max_tokens=args.max_tokens, progress=not args.no_progress, summary_json=args.summary_json,
                       **cost_options(args))
    print(report.format())
    return 1 if report.failed or report.cap_reached else 0
