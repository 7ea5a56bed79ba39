"""``distill train``: train two LoRA students on a teacher's verified reasoning paths.

    distill train --config demo --model1 M1 --model2 M2 --data_root ./data --outdir runs/x    # one process
    accelerate launch [--config_file "$(distill configs zero2)"] -m distill.commands.train --config gsm8k_lora
    accelerate launch --config_file "$(distill configs cpu_ddp)" "$(which distill)" train --task gsm8k ...

``--config`` takes a YAML file or a built-in name (``distill configs``); flags override it.
The work is :func:`distill.train.engine.train`; every option is in ``distill train --help``.
"""

from __future__ import annotations

import argparse
import sys

#: What Ctrl-C prints (after ``distill train: ``).
INTERRUPTED = "interrupted (resume with --resume_from latest)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from distill.train.config import build_arg_parser

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split("\n\n", 1)[1]
    build_arg_parser(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from distill.configs import resolve_deepspeed_env
    from distill.train.config import config_from_cli

    cfg = config_from_cli(vars(args))
    resolve_deepspeed_env()  # a built-in DeepSpeed name from the accelerate YAML -> its packaged file
    from distill.train.engine import train

    summary = train(cfg)
    from accelerate import PartialState

    state = PartialState()
    if state.is_main_process:
        print(json.dumps(summary))
    state.destroy_process_group()  # a clean exit for every rank (a live gloo group can abort at shutdown)
    return 0


def main(argv: list[str] | None = None, *, prog: str = "distill train") -> int:
    """``python -m distill.commands.train ARGS`` (what ``accelerate launch -m`` runs) = ``distill train ARGS``."""
    from distill.commands._run import run_command

    return run_command(sys.modules[__name__], list(sys.argv[1:] if argv is None else argv), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
