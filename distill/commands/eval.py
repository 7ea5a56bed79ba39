"""``distill eval --run DIR --task T --test FILE``: evaluate a trained run's students and ensemble.

The command line only; the work is :func:`distill.students.evaluate.evaluate_run` (students
reloaded as trained, greedy decoding, budgets from the training data). Under
``accelerate launch`` every rank evaluates its shard and the results are gathered.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="training output folder (holds student1/, student2/)")
    parser.add_argument("--task", required=True, help="task name (decides prompts and the verifier)")
    parser.add_argument("--test", required=True, help="JSONL file of test rows")
    parser.add_argument("--eval_bs", "--eval-bs", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=None,
                        help="generation budget per answer (default: the run's budget from train_summary.json, "
                             "else the 99th percentile of each student's training completion lengths, at least 256)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows")
    parser.add_argument("--out", default=None, help="output folder (default RUN/eval)")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from accelerate import PartialState

    from distill.students.evaluate import evaluate_run

    metrics = evaluate_run(args.run, args.task, args.test, eval_bs=args.eval_bs, max_new_tokens=args.max_new_tokens,
                           limit=args.limit, out_dir=args.out, log=lambda msg: print(msg, file=sys.stderr))
    if PartialState().is_main_process:
        print(json.dumps(metrics))
    return 0
