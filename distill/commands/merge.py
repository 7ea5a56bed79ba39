"""``distill merge --run RUN --student 1|2 --out DIR``: fuse a trained student's adapter into its
base model (for a 4-bit / 8-bit run, into the de-quantised base) and save a plain Hugging Face model
and its tokenizer. The command line only; the work is :func:`distill.students.merge.merge_student`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="training output folder (holds student1/, student2/)")
    parser.add_argument("--student", type=int, choices=(1, 2), required=True, help="which student to merge")
    parser.add_argument("--out", required=True, help="output folder for the merged model (new or empty)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    from distill.students.merge import merge_student

    info = merge_student(args.run, args.student, args.out, force=args.force)
    how = f" (de-quantised {info['quantised']} base)" if info["quantised"] else ""
    print(f"merged student {args.student} of {args.run} into {info['base']}{how}: wrote {info['out']}; "
          f"max |logit difference| vs the adapter model on a probe: {info['max_logit_diff']:.2e}")
    return 0
