"""The ``distill`` command: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Only the chosen subcommand's module is imported, and those
modules import heavy libraries (torch, transformers) inside ``run`` only, so
``distill --help`` and ``distill regen-correct`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from distill.errors import DistillError

#: name -> (module, one-line help). Order is the order shown by ``distill --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "prompt": ("distill.prompting.cli", "ask a teacher model for multi-style reasoning paths; write enriched/correct logs"),
    "regen-correct": ("distill.verify.cli", "re-score enriched logs with the current verifiers; rewrite correct-only files"),
    "judge": ("distill.prompting.judge", "LLM-as-judge filter: keep correct paths whose reasoning a judge finds sound"),
    "posrate": ("distill.router.posrate", "routing rates per reasoning style from router logs (calc_posrate)"),
    "eval": ("distill.students.eval_cli", "evaluate a trained run's students and their ensemble on a test file"),
    "demo": ("distill.demo.cli", "offline end-to-end run on a built-in task with tiny local students"),
    "bench": ("distill.bench_cli", "run the benchmarks under bench/"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distill",
        description="Distil a teacher's chain-of-thought into two cooperating LoRA students.",
        epilog="Training: accelerate launch launch/train_moe.py --help",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        if not argv:
            parser.print_help()
            return 0
        parser.parse_args(argv)  # prints help or "invalid choice" and exits
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"distill {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except DistillError as exc:
        print(f"distill {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"distill {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
