"""``distill eval --run DIR --task T --test FILE``: evaluate a trained run's students and ensemble.

The command line only; the work is :func:`distill.students.evaluate.evaluate_run` (students
reloaded as trained, greedy decoding, budgets from the training data) and, with ``--table``,
:func:`distill.students.eval_table.run_eval_table`. Under ``accelerate launch`` every rank
evaluates its shard and the results are gathered.
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
    parser.add_argument("--out", default=None, help="output folder (default RUN/eval; with --base RUN/eval/base)")
    parser.add_argument("--base", action="store_true",
                        help="evaluate the untrained students (the adapters' base models, no adapter)")
    parser.add_argument("--refine", type=int, default=0, metavar="K",
                        help="formal tasks: up to K rounds of feeding the solver's message back to the student")
    parser.add_argument("--refine_on", "--refine-on", choices=("invalid", "wrong"), default="invalid",
                        help="refine invalid programs (reference-free), or also valid but wrong ones (uses the "
                             "reference's verdict: an oracle-feedback upper bound)")
    parser.add_argument("--template_repair", "--template-repair", action="store_true",
                        help="formal tasks: also score the first programs after deterministic template repair")
    parser.add_argument("--table", action="store_true",
                        help="the full table: base, then distilled with --template-repair / --refine rows, "
                             "with intervals against base; writes OUT/table.png")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from accelerate import PartialState

    from distill.errors import ConfigError
    from distill.students.eval_rows import format_table

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    common = dict(eval_bs=args.eval_bs, max_new_tokens=args.max_new_tokens, limit=args.limit, out_dir=args.out,
                  refine=args.refine, refine_on=args.refine_on, template_repair=args.template_repair)
    if args.table:
        if args.base:
            raise ConfigError("--table already includes the base row: drop --base")
        from distill.students.eval_table import run_eval_table

        metrics = run_eval_table(args.run, args.task, args.test, include_base=True, log=log, **common)
    else:
        from distill.students.evaluate import evaluate_run

        metrics = evaluate_run(args.run, args.task, args.test, base=args.base, log=log, **common)
    if PartialState().is_main_process:
        if metrics.get("table") and not args.table:  # run_eval_table logged its table already
            log(format_table(metrics["table"]).rstrip("\n"))
        print(json.dumps({k: v for k, v in metrics.items() if k not in ("table_text",)}))
    return 0
