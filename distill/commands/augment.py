"""``distill augment``: training data for the formal tasks from valid programs.

``--kind repair`` (default) writes repair pairs: each valid program corrupted by each applicable
operator, kept only when the real solver rejects it, with its real error message; ``--kind rename``
(ASP) writes alpha-renamed variants kept only when they keep the answer sets; ``--kind equiv`` (SMT,
DOT) writes equivalence-preserving variants kept only when verified equivalent; ``--kind noise``
adds instruction noise to the problem text; ``--kind steps`` (ASP) writes multi-turn rows, one turn
per commented rule block. The work is
:func:`distill.verify.formal.augment_files.augment_file`; no torch is imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="a formal task: smt, asp or dot")
    parser.add_argument("--input", type=Path, required=True,
                        help="source rows with gold_answer programs, or a *.correct.jsonl file (its correct "
                             "paths' programs are used too; questions come from --source)")
    parser.add_argument("--out", type=Path, required=True, help="output JSONL (written atomically)")
    parser.add_argument("--source", type=Path, default=None, help="source rows giving the questions of a correct file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruption / renaming choices")
    parser.add_argument("--kind", choices=("repair", "rename", "equiv", "noise", "steps", "paraphrase"),
                        default="repair",
                        help="repair pairs; (asp) verified alpha-renamed variants; (smt, dot) verified "
                             "equivalence-preserving variants; instruction noise on the problem text; (asp) "
                             "multi-turn step-by-step rows from the %% comments; tone paraphrases of the problem "
                             "text by the teacher, kept when every number and name survives")
    teacher = parser.add_argument_group("--kind paraphrase (the teacher)")
    teacher.add_argument("--tones", default="formal,casual,terse", help="comma list (default formal,casual,terse)")
    teacher.add_argument("--backend", default="openai", help="teacher backend (default openai)")
    teacher.add_argument("--model", default="gpt-4o-mini", help="teacher model (default gpt-4o-mini)")
    teacher.add_argument("--base-url", default=None, help="OpenAI-compatible server URL")
    teacher.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    teacher.add_argument("--request-timeout", type=float, default=60.0, help="seconds per request (default 60)")
    teacher.add_argument("--max-attempts", type=int, default=6, help="tries per request (default 6)")
    teacher.add_argument("--retry-base", type=float, default=1.0, help="first backoff in seconds (default 1)")
    teacher.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    parser.add_argument("--test-out", type=Path, default=None,
                        help="--kind steps: where the held-out problems' rows go (with --test-share)")
    parser.add_argument("--test-share", type=float, default=0.0,
                        help="--kind steps: share of problems held out, whole problems only (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="solver calls at a time")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per solver call")
    parser.add_argument("--template-baseline", action="store_true",
                        help="also report how many broken programs the deterministic template repair fixes")
    parser.add_argument("--progress", action="store_true", help="(the default; --no-progress turns bars off)")


def run(args: argparse.Namespace) -> int:
    from distill.verify.formal.augment_files import augment_file

    if args.kind == "paraphrase":
        from distill.prompting.paraphrase import paraphrase_file
        from distill.prompting.transport import TeacherOptions

        teacher = TeacherOptions(backend=args.backend, model=args.model, base_url=args.base_url,
                                 concurrency=args.concurrency, request_timeout=args.request_timeout,
                                 max_attempts=args.max_attempts, retry_base=args.retry_base)
        report = paraphrase_file(args.task, args.input, args.out, teacher, args.tones.split(","), source=args.source,
                                 temperature=args.temperature)
        print(report.format())
        print(f"wrote {report.kept} rows to {args.out}")
        return 1 if report.failed else 0

    report = augment_file(args.task, args.input, args.out, seed=args.seed, kind=args.kind, source=args.source,
                          workers=args.workers, timeout=args.timeout, baseline=args.template_baseline,
                          progress=True,  # bars unless --no-progress; the summary line always
                          test_out=args.test_out, test_share=args.test_share)
    print(report.format())
    print(f"wrote {report.written} rows to {args.out}")
    return 0
