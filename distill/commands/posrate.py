"""``distill posrate``: routing rates per reasoning style and path index from router logs.

The work is :mod:`distill.router.posrate` (``compute_rates``, ``format_table``, ``plot_rates``);
no torch import, so it runs on a laptop over copied logs.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log_dir", required=True, help="training output dir holding router_logs_epoch*.jsonl")
    parser.add_argument("--json", action="store_true", help="print the rates as JSON instead of a table")
    parser.add_argument("--plot", metavar="FILE.png", help="also plot rates across epochs to this PNG")


def run(args: argparse.Namespace) -> int:
    import json

    from distill.router.posrate import compute_rates, format_table, plot_rates

    rates = compute_rates(args.log_dir)
    print(json.dumps(rates, indent=2) if args.json else format_table(rates))
    if args.plot:
        out = plot_rates(rates, args.plot)
        if not args.json:
            print(f"plot written to {out}")
    return 0
