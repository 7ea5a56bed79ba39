"""``distill prompt``: ask a teacher for multi-style reasoning paths; write enriched/correct logs.

Examples::

    distill prompt --root ./data --dataset gsm8k --n 6 --model gpt-4o-mini
    distill prompt --root ./data --dataset all --backend openai --base-url http://localhost:8000/v1 \\
        --model Qwen/Qwen2.5-7B-Instruct --concurrency 64
    distill prompt --root ./data --dataset arith --backend scripted --model scripted
    distill prompt --root ./data --dataset gsm8k --model gpt-4o-mini --max-spend 2.50 --resample-unsolved 2
    distill prompt --root ./data --dataset gsm8k --base-url http://localhost:8000/v1 --model my-model \\
        --price-in 0.20 --price-out 0.80 --max-spend 1
    distill prompt --root ./data --dataset smt,asp,dot --model gpt-4o-mini --repair-rounds 2

Outputs beside each source ``<stem>.jsonl``: ``<stem>.enriched.jsonl``, ``<stem>.correct.jsonl``
and the answer cache ``<stem>.cache.jsonl`` (a rerun re-asks only what is not in it).
The summary counts tokens billed in this run and what the cached answers cost when asked; with
prices (flags, or the built-in table for common models) it shows the cost. Exit status 1 when a
path failed or --max-spend stopped the run (its last line says how many paths were not asked).
API keys come from the environment only (OPENAI_API_KEY, GOOGLE_API_KEY / GEMINI_API_KEY).
The work is :func:`distill.prompting.pipeline.run_prompting`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill.commands._teacher import (
    add_cost_arguments, add_transport_arguments, cost_options, source_selection, teacher_options,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1].split("The work is", 1)[0]
    add_transport_arguments(parser, default_model="gpt-4o-mini")
    parser.add_argument("--n", type=int, default=None,
                        help="paths per question; styles are cycled in order (default 6; 1 with --backend reference)")
    parser.add_argument("--styles", default=None,
                        help="comma list of styles (default cot,program,knowledge,tot,fwd_bwd,plain; reference "
                             "with --backend reference)")
    parser.add_argument("--styles-file", type=Path, default=None,
                        help="YAML/JSON file {name: template with {core}} adding or replacing styles")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="max completion tokens (default 1024)")
    cost = add_cost_arguments(parser)
    cost.add_argument("--resample-unsolved", type=int, default=0, metavar="K",
                      help="after the first pass, ask questions with no verified path again (new sample "
                           "indices), up to K rounds (default 0)")
    parser.add_argument("--repair-rounds", type=int, default=0, metavar="K",
                        help="formal tasks (smt, asp, dot): send a program the solver rejects back to the teacher "
                             "with the solver's error, in the same conversation, up to K rounds per path; repair "
                             "examples go to <stem>.repairs.jsonl (default 0)")
    cost.add_argument("--resample-styles", default=None, metavar="A,B",
                      help="styles of the resampling rounds, one path each per round (default: --styles)")


def run(args: argparse.Namespace) -> int:
    from distill.prompting.pipeline import run_prompting

    report = run_prompting(teacher_options(args), source_selection(args), n=args.n, styles=args.styles,
                           styles_file=args.styles_file, temperature=args.temperature, max_tokens=args.max_tokens,
                           progress=not args.no_progress, summary_json=args.summary_json,
                           **cost_options(args), resample_unsolved=args.resample_unsolved,
                           resample_styles=args.resample_styles, repair_rounds=args.repair_rounds)
    print(report.format())
    return 1 if report.stats.failed or report.cap_reached else 0
