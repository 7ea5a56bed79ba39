"""Running one subcommand module: parse its flags, call it, turn user errors into one line."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from distill.errors import DistillError
from distill.progress import disable_progress


def run_command(module: ModuleType, argv: list[str], *, prog: str, description: str | None = None) -> int:
    """Parse ``argv`` with ``module.add_arguments`` and call ``module.run``; a
    :class:`~distill.errors.DistillError` becomes ``PROG: error: MESSAGE`` and exit 2."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    module.add_arguments(parser)
    own_flag = any("--no-progress" in action.option_strings for action in parser._actions)
    if not own_flag:  # every command takes it; those that do not define it never see it
        parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    args = parser.parse_args(argv)
    if getattr(args, "no_progress", False):
        disable_progress()
    if not own_flag:
        del args.no_progress
    try:
        return int(module.run(args) or 0)
    except DistillError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: {getattr(module, 'INTERRUPTED', 'interrupted')}", file=sys.stderr)
        return 130
