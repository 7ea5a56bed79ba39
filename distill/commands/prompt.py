"""``distill prompt``: ask a teacher for multi-style reasoning paths; write enriched/correct logs.

Examples::

    distill prompt --root ./data --dataset gsm8k --n 6 --model gpt-4o-mini
    distill prompt --root ./data --dataset all --backend openai --base-url http://localhost:8000/v1 \\
        --model Qwen/Qwen2.5-7B-Instruct --concurrency 64
    distill prompt --root ./data --dataset arith --backend scripted --model scripted

Outputs beside each source ``<stem>.jsonl``: ``<stem>.enriched.jsonl``, ``<stem>.correct.jsonl``
and the answer cache ``<stem>.cache.jsonl`` (a rerun re-asks only what is not in it).
API keys come from the environment only (OPENAI_API_KEY, GOOGLE_API_KEY / GEMINI_API_KEY).
The work is :func:`distill.prompting.pipeline.run_prompting`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill.commands._teacher import add_transport_arguments, source_selection, teacher_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1].split("The work is", 1)[0]
    add_transport_arguments(parser, default_model="gpt-4o-mini")
    parser.add_argument("--n", type=int, default=6,
                        help="paths per question; styles are cycled in order (default 6)")
    parser.add_argument("--styles", default=None,
                        help="comma list of styles (default cot,program,knowledge,tot,fwd_bwd,plain)")
    parser.add_argument("--styles-file", type=Path, default=None,
                        help="YAML/JSON file {name: template with {core}} adding or replacing styles")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="max completion tokens (default 1024)")


def run(args: argparse.Namespace) -> int:
    from distill.prompting.pipeline import run_prompting

    report = run_prompting(teacher_options(args), source_selection(args), n=args.n, styles=args.styles,
                           styles_file=args.styles_file, temperature=args.temperature, max_tokens=args.max_tokens,
                           progress=not args.no_progress, summary_json=args.summary_json)
    print(report.format())
    return 1 if report.stats.failed else 0
