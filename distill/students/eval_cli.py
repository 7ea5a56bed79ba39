"""``distill eval --run DIR --task T --test FILE``: evaluate a trained run's students and ensemble.

Loads each student's base model (from the adapter's ``base_model_name_or_path``) plus the
saved PEFT adapter and tokenizer under ``DIR/student{1,2}``, then runs the same evaluation
as the end of training (:func:`distill.students.evaluate.evaluate`). Under
``accelerate launch`` every rank evaluates its shard and the results are gathered.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distill.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="training output folder (holds student1/, student2/)")
    parser.add_argument("--task", required=True, help="task name (decides prompts and the verifier)")
    parser.add_argument("--test", required=True, help="JSONL file of test rows")
    parser.add_argument("--eval_bs", "--eval-bs", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=256, help="generation budget")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows")
    parser.add_argument("--out", default=None, help="output folder (default RUN/eval)")


def load_trained_student(folder: Path):
    """Base model + saved adapter + saved tokenizer of one trained student."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from distill.students.tokenizer import load_tokenizer

    cfg_file = folder / "adapter_config.json"
    if not cfg_file.is_file():
        raise ConfigError(f"{folder}: no adapter_config.json (not a trained student folder)")
    base = json.loads(cfg_file.read_text())["base_model_name_or_path"]
    try:
        model = AutoModelForCausalLM.from_pretrained(base)
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot load base model {base!r} ({str(exc).splitlines()[0]})") from None
    return PeftModel.from_pretrained(model, str(folder)), load_tokenizer(folder)


def run(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from distill.data.jsonl import read_rows
    from distill.data.tasks import get_task
    from distill.students.evaluate import evaluate

    get_task(args.task)
    run_dir = Path(args.run)
    test = Path(args.test)
    if not test.is_file():
        raise ConfigError(f"--test {test}: no such file")
    folders = [run_dir / name for name in ("student1", "student2") if (run_dir / name).is_dir()]
    if not folders:
        raise ConfigError(f"--run {run_dir}: no student1/ or student2/ folder")
    rows = read_rows(test, args.task)[: args.limit] if args.limit else read_rows(test, args.task)
    state = PartialState()
    students = []
    for f in folders:
        model, tok = load_trained_student(f)
        students.append((model.to(state.device), tok))

    class _Shard:  # the slice of Accelerator that evaluate() uses
        num_processes = state.num_processes
        process_index = state.process_index
        is_main_process = state.is_main_process

    _, metrics = evaluate(students, rows, args.task, accelerator=_Shard(), eval_bs=args.eval_bs,
                          max_new_tokens=args.max_new_tokens, out_dir=Path(args.out) if args.out else run_dir / "eval")
    if state.is_main_process:
        print(json.dumps(metrics))
    return 0
