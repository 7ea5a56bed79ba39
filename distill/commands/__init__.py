"""The ``distill`` command: a thin dispatcher over one module per subcommand.

Each ``distill.commands.<name>`` module holds only the command line: ``add_arguments(parser)``
defines the flags and ``run(args) -> int`` hands them to library functions (the work lives in
``distill.prompting``, ``distill.verify``, ``distill.train``, ...). Only the chosen subcommand's
module is imported, and those modules import heavy libraries (torch, transformers) inside ``run``
only, so ``distill --help`` and ``distill regen-correct`` start in a fraction of a second.

A module may set ``INTERRUPTED`` to the message printed on Ctrl-C (default ``interrupted``).

More subcommands come from packages: an entry point of group ``distill.commands`` naming a module
with the same two functions (and a one-line ``HELP``, else its docstring's first line). The demo's
``distill demo`` is one (``distill.demo.command``), so the product never imports the demo.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from distill.commands._run import run_command
from distill.plugins import PluginRegistry

#: name -> (module, one-line help). Order is the order shown by ``distill --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "prompt": ("distill.commands.prompt", "ask a teacher model for multi-style reasoning paths; write enriched/correct logs"),
    "regen-correct": ("distill.commands.regen_correct", "re-score enriched logs with the current verifiers; rewrite correct-only files"),
    "augment": ("distill.commands.augment", "formal tasks: repair pairs with real solver errors, or verified ASP renamed variants"),
    "judge": ("distill.commands.judge", "LLM-as-judge filter: keep correct paths whose reasoning a judge finds sound"),
    "train": ("distill.commands.train", "train two LoRA students (run under `accelerate launch` for several processes)"),
    "posrate": ("distill.commands.posrate", "routing rates per reasoning style from router logs (calc_posrate)"),
    "eval": ("distill.commands.eval", "evaluate a trained run's students and their ensemble on a test file"),
    "bench": ("distill.commands.bench", "run the benchmark scripts of a checkout's bench/ folder"),
    "merge": ("distill.commands.merge", "fuse a trained student's adapter into its base model; save a plain HF model"),
    "report": ("distill.commands.report", "write a run's report.md with plots from its run folder"),
    "data": ("distill.commands.data", "import a dataset (hub name or local files) into the JSONL schema: distill data import TASK"),
    "configs": ("distill.commands.configs", "list the built-in train/accelerate/deepspeed configs or print one's path"),
}


class CommandRegistry(PluginRegistry[ModuleType]):
    """Plug-in subcommands: entry point name -> command module."""

    def _check(self, name: str, obj: object) -> ModuleType:
        if not (callable(getattr(obj, "add_arguments", None)) and callable(getattr(obj, "run", None))):
            raise TypeError(f"{obj!r} is not a command module (needs add_arguments(parser) and run(args))")
        return obj  # type: ignore[return-value]


PLUGIN_COMMANDS = CommandRegistry("distill.commands", "command")


def command_help(module: ModuleType) -> str:
    """A command module's one-line help: ``HELP``, else its docstring's first line."""
    return getattr(module, "HELP", None) or (module.__doc__ or "").strip().split("\n", 1)[0]


def commands() -> dict[str, str]:
    """Every subcommand -> its one-line help, built-ins first (loads the plug-in command modules)."""
    out = {name: help_ for name, (_, help_) in COMMANDS.items()}
    for name in sorted(PLUGIN_COMMANDS):
        out.setdefault(name, command_help(PLUGIN_COMMANDS[name]))
    return out


EPILOG = ("Training on several processes: accelerate launch [--config_file \"$(distill configs zero2)\"] "
          "-m distill.commands.train --help")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distill",
        description="Distil a teacher's chain-of-thought into two cooperating LoRA students.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_ in commands().items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name, rest = (argv[0], argv[1:]) if argv else ("", [])
    if name in COMMANDS:
        module_name, help_ = COMMANDS[name]
        module = importlib.import_module(module_name)
    elif name and not name.startswith("-") and name in PLUGIN_COMMANDS:
        module = PLUGIN_COMMANDS[name]
        help_ = command_help(module)
    else:
        parser = build_parser()
        if not argv:
            parser.print_help()
            return 0
        parser.parse_args(argv)  # prints help or "invalid choice" and exits
        return 2
    return run_command(module, rest, prog=f"distill {name}", description=help_)
