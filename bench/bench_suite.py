#!/usr/bin/env python
"""The benchmark suite: every CPU figure of ``distill bench`` in one table (or one JSON object).

Each figure is a function returning ``{name, value, unit, target, op, met, inputs, detail}``
(:func:`suite_common.figure`); this runner composes them, records the machine (CPU model, cores, load
average at start and end: the machine may be shared, and other users' load only adds time) and prints a
markdown table, or with ``--json`` one JSON object on stdout (progress on stderr).

    .venv/bin/python bench/bench_suite.py --quick            # small sizes (< 10 min on 2 idle cores)
    .venv/bin/python bench/bench_suite.py --json --out runs/bench_suite/results.json
    .venv/bin/python bench/bench_suite.py --only verify,padding --quick
    distill bench --quick --json                             # the same, through the command

Groups (``--only``): prompting, verify, formal, padding, training (speed-up vs pad-to-max, mixture vs
separate, router + peer overhead), trl, memory. Exit status: 0 when every figure with a target met it,
1 otherwise (the table says which), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite_common import failed_figure, machine  # noqa: E402

#: group -> (figure names it yields with their targets, runner(tmp, quick) -> list of figures)
GROUPS: dict[str, tuple[tuple[tuple[str, float | None, str], ...], Callable[[Path, bool], list[dict]]]] = {}


def _group(name: str, figures: tuple[tuple[str, float | None, str], ...]):
    def deco(fn):
        GROUPS[name] = (figures, fn)
        return fn
    return deco


@_group("prompting", (("prompting_efficiency", 0.9, ">="), ("prompting_requests_per_s_50ms", None, ">="),
                      ("prompting_speedup_vs_sync_batches", None, ">=")))
def _prompting(tmp: Path, quick: bool) -> list[dict]:
    from suite_prompt import prompting_figures
    return prompting_figures(quick)


@_group("verify", (("verify_per_s_gsm8k", 500.0, ">="), ("verify_per_s_math", 500.0, ">=")))
def _verify(tmp: Path, quick: bool) -> list[dict]:
    from suite_verify import math_figures
    return math_figures(quick)


@_group("formal", (("verify_per_s_formal", 50.0, ">="),))
def _formal(tmp: Path, quick: bool) -> list[dict]:
    from suite_verify import formal_figure
    return [formal_figure(quick)]


@_group("padding", (("padding_efficiency", 0.9, ">="),))
def _padding(tmp: Path, quick: bool) -> list[dict]:
    from suite_train import padding_efficiency
    return [padding_efficiency(tmp, quick)]


@_group("training", (("train_speedup_vs_pad_to_max", 2.5, ">="), ("mixture_vs_separate", 0.8, "<="),
                     ("router_peer_overhead", 0.15, "<=")))
def _training(tmp: Path, quick: bool) -> list[dict]:
    from suite_train import training_figures
    return training_figures(tmp, quick)


@_group("trl", (("vs_trl_sft", 1.0, ">="),))
def _trl(tmp: Path, quick: bool) -> list[dict]:
    from suite_trl import vs_trl_figure
    return [vs_trl_figure(tmp, quick)]


@_group("memory", (("peak_memory", None, "<="),))
def _memory(tmp: Path, quick: bool) -> list[dict]:
    from suite_memory import peak_memory_figure
    return [peak_memory_figure(tmp, quick)]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def format_table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, torch {m['torch']} with "
             f"{doc['inputs']['threads']} thread(s); shared with other users: load average (1, 5, 15 min) "
             f"{m['load_avg_start']} at start, {m.get('load_avg_end')} at end. Commit {str(m['git_commit'])[:10]} "
             f"(+{m['git_dirty_files']} uncommitted files). {'--quick' if doc['inputs']['quick'] else 'full sizes'}, "
             f"wall {doc['wall_s']:.0f} s.", "",
             "| figure | value | unit | target | met | key inputs |", "|---|---|---|---|---|---|"]
    for f in doc["figures"]:
        inp = f.get("inputs") or {}
        keys = [f"{k} {inp[k]}" for k in ("requests", "concurrency", "latency_s", "answers", "paths", "bs",
                                          "max_len", "workers", "seed", "repeats") if k in inp]
        target = "-" if f["target"] is None else f"{f['op']} {_fmt(f['target'])}"
        met = "-" if f["met"] is None else ("met" if f["met"] else "**NOT met**")
        err = f["detail"].get("error")
        lines.append(f"| {f['name']} | {_fmt(f['value']) if not err else 'error: ' + err[:80]} | {f['unit']} | "
                     f"{target} | {met} | {', '.join(keys)} |")
    return "\n".join(lines)


def run_suite(groups: list[str], quick: bool, threads: int, log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the child processes (TRL, memory) use the same
    doc: dict[str, Any] = {"bench": "suite", "machine": machine(), "figures": [],
                           "inputs": {"quick": quick, "groups": groups, "threads": threads}, "timings_s": {}}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="distill_bench_") as tmp:
        for g in groups:
            names, fn = GROUPS[g]
            log(f"{g} ...")
            t0 = time.perf_counter()
            try:
                doc["figures"].extend(fn(Path(tmp), quick))
            except Exception as exc:  # one group failing must not hide the others' figures
                traceback.print_exc(file=sys.stderr)
                doc["figures"].extend(failed_figure(n, t, op, f"{type(exc).__name__}: {exc}") for n, t, op in names)
            doc["timings_s"][g] = round(time.perf_counter() - t0, 1)
            log(f"{g}: {doc['timings_s'][g]:.0f} s, load average {os.getloadavg()[0]:.1f}")
    doc["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["wall_s"] = time.perf_counter() - t_all
    doc["missed"] = [f["name"] for f in doc["figures"] if f["met"] is False]
    doc["table_md"] = format_table(doc)
    return doc


def default_threads() -> int:
    """All cores on an idle machine; 1 when other work already loads it (measured on the 2-core project
    machine at load 12: a tiny training step took 4-8 s with 2 torch threads, 0.45 s with 1)."""
    cores = os.cpu_count() or 1
    return cores if os.getloadavg()[0] < 0.5 * cores else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (< 10 min on 2 idle cores)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress on stderr)")
    ap.add_argument("--only", default=",".join(GROUPS), help=f"comma list of groups (default all: {','.join(GROUPS)})")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: all cores when the load average is under half of them, else 1)")
    ap.add_argument("--out", default=None, help="also write the JSON object to this file")
    args = ap.parse_args(argv)
    args.groups = [g.strip() for g in args.only.split(",") if g.strip()]
    bad = [g for g in args.groups if g not in GROUPS]
    if bad or not args.groups:
        ap.error(f"--only: unknown group(s) {bad}; choose from {', '.join(GROUPS)}")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = args.threads or default_threads()
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:5.0f}s] bench suite: {msg}", file=sys.stderr, flush=True)

    if args.json:  # stdout carries only the JSON object: anything a library prints goes to stderr
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            doc = run_suite(args.groups, args.quick, threads, log)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        print(json.dumps(doc, default=str), flush=True)
    else:
        doc = run_suite(args.groups, args.quick, threads, log)
        print(doc["table_md"])
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return 1 if doc["missed"] else 0


if __name__ == "__main__":
    sys.exit(main())
