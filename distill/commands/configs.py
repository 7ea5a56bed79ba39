"""``distill configs [NAME]``: list the built-in configs, or print the path of one.

Accelerate needs a file path for ``--config_file``; an installed distill keeps its configs inside
the package, so: ``accelerate launch --config_file "$(distill configs zero2)" -m distill.commands.train``.
The work is :mod:`distill.configs`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=None,
                        help="a built-in config name (demo, zero2, ds_zero2, ...): print its path")
    parser.add_argument("--kind", choices=("train", "accelerate", "deepspeed"), default=None,
                        help="only this kind (needed only if NAME is ambiguous)")


def run(args: argparse.Namespace) -> int:
    from distill.configs import KINDS, builtin_names, find_any, find_config

    if args.name is not None:
        print(find_config(args.name, args.kind) if args.kind else find_any(args.name)[1])
        return 0
    for kind in ([args.kind] if args.kind else list(KINDS)):
        print(f"{kind}:")
        for name in builtin_names(kind):
            print(f"  {name:<12} {find_config(name, kind)}")
    return 0
