"""``distill data import``: load a dataset (hub name or local files) and write it in our JSONL schema.

The work is :func:`distill.data.importing.import_dataset`; this module holds only the command line.
"""

from __future__ import annotations

import argparse
import sys

HELP = "import a dataset (hub name or local files) into the JSONL schema: distill data import TASK"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="write <root>/<task>/<split>/<name>.jsonl from a dataset in its public format",
                         description="Load a hub dataset (online, or from the cache offline) or local parquet / "
                                     "JSON / JSONL / CSV / Arrow files with `datasets` and write them in our schema.")
    imp.add_argument("task", metavar="TASK", help="task name (gsm8k, math, arc_challenge, commonsense_qa, "
                                                  "strategy_qa, anli, date, table_mwp, or a plug-in task)")
    imp.add_argument("--from", dest="sources", nargs="+", required=True, metavar="NAME_OR_FILES",
                     help="a hub dataset name (openai/gsm8k), a folder, or files (globs allowed)")
    imp.add_argument("--split", default="test", choices=("train", "test"),
                     help="our split: the output folder (default test)")
    imp.add_argument("--source-split", default=None,
                     help="the split to read from a hub dataset or folder (default: --split; e.g. validation, test_r3)")
    imp.add_argument("--subset", default=None, help="a hub dataset's configuration (main for openai/gsm8k)")
    imp.add_argument("--root", default="data", help="data root (default ./data)")
    imp.add_argument("--name", default=None, help="output file name without .jsonl (default: from the source)")
    imp.add_argument("--limit", type=int, default=None, help="keep N rows, sampled with --seed, in source order")
    imp.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    imp.add_argument("--map", dest="maps", action="append", default=[], metavar="FIELD=COLUMN",
                     help="take our FIELD from source COLUMN (dotted for nested: question.stem); repeatable")
    imp.add_argument("--license", default=None, help="the source's licence, when its card does not name one")
    imp.add_argument("--strict", action="store_true", help="fail (nothing written) if any row cannot be imported")
    imp.add_argument("--force", action="store_true", help="replace an existing output file")
    imp.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS, help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from distill.data.importing import ImportConfig, import_dataset

    cfg = ImportConfig.build(task=args.task, sources=args.sources, split=args.split, root=args.root,
                             name=args.name, source_split=args.source_split, subset=args.subset, limit=args.limit,
                             seed=args.seed, maps=args.maps, strict=args.strict, force=args.force,
                             license=args.license, progress=not args.no_progress)
    report = import_dataset(cfg)
    lines = report.lines()
    for line in lines[:-2]:
        print(line, file=sys.stderr)
    print("\n".join(lines[-2:]))
    return 0
