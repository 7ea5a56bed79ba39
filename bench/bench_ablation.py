#!/usr/bin/env python
"""QR-Distill ablation: does each part of the method (routing, peer teaching, two students) pay off?

For each seed the demo machinery builds ONE data set (the routing probe's ``arith`` questions with
distractor facts), the scripted teacher's verified paths and the two tiny students of
:func:`distill.demo.config.probe_config` -- student 1 a llama with a 144-token left-truncating
window (the long ``tot`` paths lose their question: unlearnable for it), student 2 a qwen2 with its
own BPE tokenizer that sees every path. Then every arm is one real ``distill train --config demo
--recipe ARM`` on exactly those inputs (same data, paths, epochs, learning rates, training seed,
evaluation); only ``--recipe`` differs:

    solo1, solo2      one student alone (SFT on every path)
    separate          both students, every path, no interaction
    routing_only      learned CoT router, no peer teaching
    peer_only         every path to both students + peer teaching
    full              QR-Distill: learned routing + peer teaching
    random_routing    a fixed random assignment + peer teaching
    style_routing     the style oracle: tot -> student 2 only, every other path both, no peer (not default)
    style_full        the style oracle + peer teaching (not default)

Reported per arm (mean and 95% Student-t interval over seeds): test accuracy of student 1, student 2
and the ensemble (the run's ``eval/metrics.json``), wall time per epoch (the sum of the run's
``metrics.jsonl`` step times per epoch), the share of ``tot`` paths routed to student 2 in the last
epoch (``router_logs_epoch{E}.jsonl``); plus the mixture-vs-separate epoch-time ratio (target <= 0.8)
and paired (same seed) accuracy differences of ``full`` against each ablation. On a shared machine
other users' load only adds time, so the time ratio's verdict uses each arm's fastest seed (the ratio of
the means is printed beside it). Targets are printed as met / not met; the exit status is non-zero only
when something failed to run.

Training runs in ONE process per arm (``python -m distill.commands.train``, the same command as
``distill train``) by default; ``--num_processes 2`` uses ``accelerate launch`` on 2 CPU processes as
the demo does (note: one process at ``bs 8`` takes twice the optimizer steps of the demo's 2 x 8). Why
one: see bench/RESULTS.md (measured on 2 cores: per-run wall time about equal at these sizes, and the
2-process launch of ``full`` aborted in a gloo collective).

    .venv/bin/python bench/bench_ablation.py --quick            # 3 seeds, small sizes (~7 min on an idle 2-core CPU)
    .venv/bin/python bench/bench_ablation.py --seeds 3 --n_train 400 --n_test 100 --epochs 12   # the default sizes
    .venv/bin/python bench/bench_ablation.py --arms separate,full --seeds 1 --n_train 16 --n_test 4 --epochs 1 --json

``--resume`` reuses the seeds and finished runs of an earlier call with the same ``--out`` (several people
edit this tree at once: a run that failed because of someone's half-saved edit need not cost the others).

Writes ``OUT/results.json`` (every figure and its inputs), ``OUT/table.md``, ``OUT/ablation.png``,
and per seed ``OUT/seed{S}/`` (data, students, logs) and ``OUT/seed{S}/runs/{ARM}/`` (each run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Every arm, in the order of the table: the baselines first, the method (``full``) near the end.
ARMS = ("solo1", "solo2", "separate", "routing_only", "peer_only", "full", "random_routing", "full_peer_all",
        "full_uld", "routing_cov", "full_cov", "style_routing", "style_full")
#: the arms a plain call runs
DEFAULT_ARMS = ARMS[:9]
#: arms that are a recipe plus flags: ``full_peer_all`` is QR-Distill with peer teaching on every path
#: (``--peer_scope all``), against ``full``'s default ``co_routed``: the evidence for that default.
#: ``full_uld`` swaps the cross-tokenizer peer signal from projected hidden states (``auto`` -> ``hidden``)
#: to Universal Logit Distillation: whether the hidden-state InfoNCE is what hurts student 1.
#: ``routing_cov`` / ``full_cov`` swap the router's objective (entropy balance, mean-centred cost) for a
#: coverage floor and a margin of 1 standard deviation: a path trains both students unless it is an
#: outlier for one (distill.router.router, "Or a coverage floor"). The margin was set before any run, not tuned.
COVERAGE = ("--router_balance", "coverage", "--router_margin", "1.0")
#: ``style_routing`` / ``style_full``: the style oracle. No learned router: ``tot`` (the style the probe
#: makes unlearnable for student 1) trains student 2 only, every other path both (``--routing styles``),
#: without / with peer teaching. The routing a learned router should find, so these arms bound what
#: routing itself can be worth on this task, apart from how well the router finds it.
STYLE_ORACLE = ("--routing", "styles", "--route_styles", "tot=2")
ARM_FLAGS: dict[str, tuple[str, tuple[str, ...]]] = {"style_routing": ("separate", STYLE_ORACLE),
                                                     "style_full": ("peer_only", STYLE_ORACLE),
                                                     "full_peer_all": ("full", ("--peer_scope", "all")),
                                                     "full_uld": ("full", ("--peer", "uld")),
                                                     "routing_cov": ("routing_only", COVERAGE),
                                                     "full_cov": ("full", COVERAGE)}
#: The method (``full``, or ``--method``) against each of these (paired by seed): what each part is worth.
COMPARISONS = {"separate": "routing + peer", "routing_only": "peer teaching", "peer_only": "learned routing",
               "random_routing": "learned vs random routing", "solo1": "two students vs student 1 alone",
               "solo2": "two students vs student 2 alone",
               "full_peer_all": "peer scope co_routed (default) vs all",
               "full_uld": "peer signal hidden (auto) vs uld",
               "routing_cov": "peer teaching (coverage objective)",
               "full": "the default objective (entropy balance, margin 0)",
               "full_cov": "the coverage objective (coverage floor, margin 1)",
               "style_routing": "learned routing + peer vs the style oracle without peer",
               "style_full": "learned routing vs the style oracle (both with peer)"}
#: Mixture (``full``) epoch time / ``separate`` epoch time must be at or below this.
TIME_RATIO_TARGET = 0.8
#: The style that student 1's window cannot learn (the probe's premise); its share to student 2.
PROBE_STYLE = "tot"
QUICK = {"n_train": 100, "n_test": 40, "epochs": 3, "seeds": 3}
#: 12 epochs, not the demo's 6: at 6 these students had not converged (separate: ensemble 40.8 +- 16.4%,
#: one seed's student 1 at 10%, another's at 68%; at 12 on the same data, 92.8 +- 6.8%; bench/RESULTS.md),
#: so the arms' differences were mostly which runs happened to learn the arithmetic in time.
DEFAULT = {"n_train": 400, "n_test": 100, "epochs": 12, "seeds": 3}

# 97.5% quantiles of Student's t (two-sided 95%) for 1..30 degrees of freedom: used when scipy is absent.
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788,
         2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
         2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


# ------------------------------------------------------------------------------------- pure parts
def t_quantile(df: int, conf: float = 0.95) -> float:
    """The two-sided ``conf`` critical value of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"need df >= 1, got {df}")
    try:
        from scipy.stats import t

        return float(t.ppf(0.5 + conf / 2, df))
    except ImportError:
        if abs(conf - 0.95) > 1e-12:
            raise ValueError("without scipy only conf=0.95 is available") from None
        return _T975[df - 1] if df <= len(_T975) else 1.959964 + 2.4 / df  # 1.96 + O(1/df) tail


@dataclass
class Interval:
    """Mean of ``n`` values and its two-sided Student-t interval (``lo``/``hi`` None when n < 2)."""

    mean: float | None
    lo: float | None
    hi: float | None
    n: int
    sd: float | None = None

    @property
    def half(self) -> float | None:
        return None if self.lo is None or self.mean is None else self.mean - self.lo


def t_interval(values: Sequence[float | None], conf: float = 0.95) -> Interval:
    """Mean and ``conf`` Student-t interval over the non-None ``values`` (one per seed)."""
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if n == 0:
        return Interval(None, None, None, 0)
    m = statistics.fmean(xs)
    if n == 1:
        return Interval(m, None, None, 1)
    sd = statistics.stdev(xs)
    h = t_quantile(n - 1, conf) * sd / math.sqrt(n)
    return Interval(m, m - h, m + h, n, sd)


def arm_accuracies(arm: str, metrics: dict[str, Any]) -> dict[str, float | None]:
    """Student 1 / student 2 / ensemble accuracy of one run, named by the student actually trained.

    ``solo2`` trains student 2 as the run's only model (``model1 := model2``), so its ``acc_s1`` is
    student 2's accuracy; a solo run has no ensemble (None, not the single student's figure).
    """
    keys = ("acc_s1", "acc_s2", "acc_ensemble", "acc_oracle", "acc_best_single")
    if arm == "solo1":
        return {"s1": metrics["acc_s1"], "s2": None, "ensemble": None, "oracle": None, "best_single": metrics["acc_s1"]}
    if arm == "solo2":
        return {"s1": None, "s2": metrics["acc_s1"], "ensemble": None, "oracle": None, "best_single": metrics["acc_s1"]}
    missing = [k for k in keys if metrics.get(k) is None]
    if missing:
        raise ValueError(f"arm {arm}: eval metrics lack {missing}")
    return {"s1": metrics["acc_s1"], "s2": metrics["acc_s2"], "ensemble": metrics["acc_ensemble"],
            "oracle": metrics["acc_oracle"], "best_single": metrics["acc_best_single"]}


def epoch_times(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-epoch wall time from ``metrics.jsonl`` records (one per optimizer step with ``--log_every 1``).

    ``epoch_s``: the sum of the epoch's step times (forward, backward, optimizer, bookkeeping; the
    checkpoint at the epoch end and the evaluation are not in it), ``mean_epoch_s`` their mean over
    epochs; ``median_step_s`` x ``steps_per_epoch`` is an estimate less sensitive to other load.
    """
    per: dict[int, list[float]] = {}
    for r in records:
        per.setdefault(int(r["epoch"]), []).append(float(r["step_time_s"]))
    if not per:
        raise ValueError("metrics.jsonl has no step records")
    epoch_s = {e: sum(v) for e, v in sorted(per.items())}
    steps = [len(v) for _, v in sorted(per.items())]
    med = statistics.median([t for v in per.values() for t in v])
    return {"epoch_s": {str(e): round(s, 3) for e, s in epoch_s.items()},
            "mean_epoch_s": statistics.fmean(epoch_s.values()), "steps_per_epoch": max(steps),
            "median_step_s": med, "median_epoch_s": med * max(steps)}


def last_epoch_routing(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per style in one epoch's router log: paths, share to each student (``"both"`` counts for both),
    and both students' mean per-token loss (the router's evidence)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = out.setdefault(str(r.get("style") or "unknown"), {"count": 0, "to_s1": 0, "to_s2": 0, "nll_s1": 0.0,
                                                               "nll_s2": 0.0})
        route = r["route"]
        s["count"] += 1
        s["to_s1"] += route in (1, "1", 3, "3", "both")
        s["to_s2"] += route in (2, "2", 3, "3", "both")
        nll = r.get("nll") or [None, None]
        for k in (0, 1):  # None: the student did not run that path (a routed step that measured no cost)
            if nll[k] is not None:
                s[f"nll_s{k + 1}"] += float(nll[k])
                s[f"n_s{k + 1}"] = s.get(f"n_s{k + 1}", 0) + 1
    for s in out.values():
        n = s["count"]
        s["share_s1"], s["share_s2"] = s.pop("to_s1") / n, s.pop("to_s2") / n
        for k in ("s1", "s2"):
            m = s.pop(f"n_{k}", 0)
            s[f"nll_{k}"] = s[f"nll_{k}"] / m if m else float("nan")
    return dict(sorted(out.items()))


def summarize(results: dict[str, list[dict[str, Any]]], conf: float = 0.95, method: str = "full") -> dict[str, Any]:
    """Per-arm intervals, the time ratio and the paired comparisons from per-(arm, seed) run records.

    ``method`` is the arm the comparisons are about (``full``, or a variant such as ``full_cov``): its
    ensemble against every other arm of :data:`COMPARISONS` that ran.

    ``results[arm]`` is a list of run records (one per seed, in seed order) with ``seed``, ``acc``
    (from :func:`arm_accuracies`), ``time`` (from :func:`epoch_times`), ``routing`` (from
    :func:`last_epoch_routing`, or None for solo arms) and ``wall_s``.
    """
    arms: dict[str, Any] = {}
    for arm, runs in results.items():
        row: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
        for key in ("s1", "s2", "ensemble", "oracle", "best_single"):
            row[key] = asdict(t_interval([r["acc"][key] for r in runs], conf))
        row["epoch_s"] = asdict(t_interval([r["time"]["mean_epoch_s"] for r in runs], conf))
        row["median_epoch_s"] = asdict(t_interval([r["time"]["median_epoch_s"] for r in runs], conf))
        row["run_wall_s"] = asdict(t_interval([r["wall_s"] for r in runs], conf))
        row["run_cpu_s"] = asdict(t_interval([r.get("cpu_s") for r in runs], conf))
        shares = [r["routing"][PROBE_STYLE]["share_s2"] if r.get("routing") and PROBE_STYLE in r["routing"] else None
                  for r in runs]
        row["tot_to_s2"] = asdict(t_interval(shares, conf))
        arms[arm] = row
    out: dict[str, Any] = {"conf": conf, "arms": arms}
    if method in arms and "separate" in arms:
        f, s = results[method], results["separate"]
        mean = arms[method]["epoch_s"]["mean"] / arms["separate"]["epoch_s"]["mean"]
        med = arms[method]["median_epoch_s"]["mean"] / arms["separate"]["median_epoch_s"]["mean"]
        # Other users' load on a shared machine only ever adds time, so each arm's fastest seed is
        # the least disturbed estimate of its own cost: the verdict is on that ratio.
        best = min(r["time"]["mean_epoch_s"] for r in f) / min(r["time"]["mean_epoch_s"] for r in s)
        out["time_ratio"] = {"full_over_separate": best, "of_means": mean, "of_median_steps": med,
                             "estimator": "fastest seed of each arm (mean epoch time)",
                             "target": TIME_RATIO_TARGET, "met": best <= TIME_RATIO_TARGET}
    comps = []
    if method in results:
        full = {r["seed"]: r["acc"]["ensemble"] for r in results[method]}
        for other, what in COMPARISONS.items():
            if other not in results or other == method:
                continue
            # a solo arm has no ensemble: full's ensemble against that student trained alone
            key = {"solo1": "s1", "solo2": "s2"}.get(other, "ensemble")
            diffs = [full[r["seed"]] - r["acc"][key] for r in results[other]
                     if r["seed"] in full and full[r["seed"]] is not None and r["acc"][key] is not None]
            diff = t_interval(diffs, conf)
            significant = diff.lo is not None and diff.lo > 0  # the target: ahead by more than the interval
            comps.append({"vs": other, "tests": what, "metric": f"{method} ensemble - {other} {key}",
                          "diff": asdict(diff), "met": significant, "significant": significant,
                          "ahead": diff.mean is not None and diff.mean > 0})
    out["comparisons"] = comps
    out["routing_styles"] = routing_styles(results)
    if method in arms and arms[method]["tot_to_s2"]["mean"] is not None:
        out["probe_routing"] = {"tot_to_s2": arms[method]["tot_to_s2"]["mean"], "target": 0.8,
                                "met": arms[method]["tot_to_s2"]["mean"] >= 0.8}
    out["method"] = method
    return out


def _pct(iv: dict[str, Any]) -> str:
    if iv["mean"] is None:
        return "-"
    if iv["lo"] is None:
        return f"{100 * iv['mean']:.1f}"
    return f"{100 * iv['mean']:.1f} ± {100 * (iv['mean'] - iv['lo']):.1f}"


def _sec(iv: dict[str, Any]) -> str:
    if iv["mean"] is None:
        return "-"
    return f"{iv['mean']:.1f}" + (f" ± {iv['mean'] - iv['lo']:.1f}" if iv["lo"] is not None else "")


def format_table(summary: dict[str, Any], inputs: dict[str, Any]) -> str:
    """The markdown tables: per arm, then the targets (met / not met), then the paired comparisons."""
    conf = int(round(100 * summary["conf"]))
    method = summary.get("method", "full")
    lines = [f"n_train {inputs['n_train']}, n_test {inputs['n_test']}, epochs {inputs['epochs']}, "
             f"seeds {inputs['seeds']} (mean ± {conf}% Student-t half-width over seeds; accuracies in %; "
             "epoch s: wall time of one epoch's steps; run CPU s: the whole run incl. start-up and eval)", "",
             "| arm | student 1 | student 2 | ensemble | oracle | epoch s | run CPU s | tot → s2 (last epoch) |",
             "|---|---|---|---|---|---|---|---|"]
    for arm, r in summary["arms"].items():
        tot = r["tot_to_s2"]
        tot_s = "-" if tot["mean"] is None else f"{100 * tot['mean']:.0f}%"
        lines.append(f"| {arm} | {_pct(r['s1'])} | {_pct(r['s2'])} | {_pct(r['ensemble'])} | {_pct(r['oracle'])} "
                     f"| {_sec(r['epoch_s'])} | {_sec(r.get('run_cpu_s') or {'mean': None})} | {tot_s} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    tr = summary.get("time_ratio")
    if tr:
        lines.append(f"| epoch time {method} / separate <= {tr['target']} | {tr['full_over_separate']:.2f} (fastest seed "
                     f"of each; ratio of means {tr['of_means']:.2f}, of median-step estimates "
                     f"{tr['of_median_steps']:.2f}) | {'met' if tr['met'] else 'NOT met'} |")
    pr = summary.get("probe_routing")
    if pr:
        lines.append(f"| {method}: tot → student 2 >= {pr['target']:.0%} (last epoch) | {pr['tot_to_s2']:.0%} "
                     f"| {'met' if pr['met'] else 'NOT met'} |")
    for c in summary["comparisons"]:
        d = c["diff"]
        ci = "" if d["lo"] is None else f" [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"
        m = "-" if d["mean"] is None else f"{100 * d['mean']:+.1f} pt{ci}"
        verdict = "met (CI > 0)" if c["met"] else "NOT met" + (" (ahead, but the CI includes 0)" if c.get("ahead") else "")
        lines.append(f"| {method} > {c['vs']} ({c['tests']}: {c['metric']}) | {m} | {verdict} |")
    return "\n".join(lines)


def routing_styles(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per routed arm and style, last-epoch routing shares and both students' mean loss, averaged over seeds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for arm in results:
        runs = [r["routing"] for r in results[arm] if r.get("routing")]
        if not runs:
            continue
        styles = sorted({s for r in runs for s in r})
        out[arm] = {s: {k: statistics.fmean(r[s][k] for r in runs if s in r)
                        for k in ("share_s1", "share_s2", "nll_s1", "nll_s2")} for s in styles}
    return out


def format_routing(styles: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown: the routers' evidence (last epoch, mean over seeds): where each style went, both losses."""
    if not styles:
        return ""
    lines = ["Last-epoch router logs (mean over seeds): share of each style's paths that trained each student "
             "(\"both\" counts for both) and each student's mean per-token loss on them", "",
             "| arm | style | → s1 | → s2 | loss s1 | loss s2 |", "|---|---|---|---|---|---|"]
    for arm, table in styles.items():
        for style, r in table.items():
            lines.append(f"| {arm} | {style} | {r['share_s1']:.0%} | {r['share_s2']:.0%} | {r['nll_s1']:.3f} "
                         f"| {r['nll_s2']:.3f} |")
    return "\n".join(lines)


def plot(summary: dict[str, Any], out_file: Path, title: str) -> Path:
    """Bar chart of student 1 / student 2 / ensemble accuracy per arm with interval bars (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(summary["arms"])
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(arms)), 4))
    width = 0.27
    for j, (key, label) in enumerate((("s1", "student 1 (llama, 144-token window)"), ("s2", "student 2 (qwen2)"),
                                      ("ensemble", "ensemble"))):
        xs, ys, errs = [], [], []
        for i, arm in enumerate(arms):
            iv = summary["arms"][arm][key]
            if iv["mean"] is None:
                continue
            xs.append(i + (j - 1) * width)
            ys.append(100 * iv["mean"])
            errs.append(0.0 if iv["lo"] is None else 100 * (iv["mean"] - iv["lo"]))
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=label, color=f"C{j}")
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels(arms, rotation=20)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return out_file


# -------------------------------------------------------------------------------------- running
@dataclass
class SeedData:
    """One seed's shared inputs: the data root (verified paths), both students, the embedding cache."""

    seed: int
    root: Path
    data_root: Path
    m1: Path
    m2: Path
    emb_cache: Path | None
    prep_s: float
    teacher: dict[str, Any] = field(default_factory=dict)


def demo_config(seed: int, n_train: int, n_test: int, out: Path):
    """The routing-probe preset for this seed (data and teacher seeded by ``seed``)."""
    from distill.demo.config import PROBE_DISTRACTORS, PROBE_MAX_EXTRA, probe_config
    from distill.demo.synthetic import ArithConfig

    arith = ArithConfig(n_train=n_train, n_test=n_test, seed=seed, distractors=PROBE_DISTRACTORS,
                        max_extra=PROBE_MAX_EXTRA)
    return probe_config(outdir=str(out), arith=arith, teacher_seed=seed, num_processes=1, plot=False)


SEED_RECORD = "seed.json"
RUN_RECORD = "bench_record.json"


def prepare_seed(seed: int, n_train: int, n_test: int, out: Path, log: Callable[[str], None],
                 resume: bool = False) -> SeedData:
    """Data, scripted teacher + verification, both students and the router's path embeddings, as
    ``distill demo --probe`` builds them (the same public stages). With ``resume``, a seed folder
    prepared before for the same sizes is reused."""
    from distill.demo.report import teacher_stats
    from distill.demo.stages import prefill_router_cache, prompt_command, read_json, run_logged, train_command
    from distill.demo.students import build_students, tokenizer_corpus
    from distill.demo.synthetic import write_splits

    t0 = time.perf_counter()
    key = {"seed": seed, "n_train": n_train, "n_test": n_test}
    if resume and (out / SEED_RECORD).is_file():
        rec = json.loads((out / SEED_RECORD).read_text(encoding="utf-8"))
        if rec.get("key") == key:
            log(f"seed {seed}: reusing {out}")
            emb = Path(rec["emb_cache"]) if rec.get("emb_cache") else None
            return SeedData(seed, out, Path(rec["data_root"]), Path(rec["m1"]), Path(rec["m2"]), emb, rec["prep_s"],
                            rec["teacher"])
    if out.exists():
        shutil.rmtree(out)
    cfg = demo_config(seed, n_train, n_test, out)
    splits = write_splits(out / "data", cfg.arith)
    run_logged("prompt", prompt_command(cfg, splits["train"], out / "teacher_summary.json"), out / "logs" / "prompt.log")
    teacher = teacher_stats(read_json(out / "teacher_summary.json"))
    corpus = tokenizer_corpus(splits["train"], splits["train"].with_name("train.enriched.jsonl"))
    m1, m2 = build_students(cfg, corpus, out / "students")
    # one embedding pass per seed (every core), hard-linked into each routed arm's run folder
    cmd = train_command(cfg, out / "data", m1, m2, out / "embed")
    n = prefill_router_cache(cmd + ["--recipe", "full"], out / "embed", os.cpu_count() or 2)
    log(f"seed {seed}: {teacher['paths_correct']}/{teacher['paths_total']} verified paths, {n} embedded, "
        f"students {m1.name} + {m2.name} ({time.perf_counter() - t0:.0f} s)")
    sd = SeedData(seed, out, out / "data", m1, m2, out / "embed" / "emb_cache" if n else None,
                  time.perf_counter() - t0, teacher)
    rec = {"key": key, "data_root": str(sd.data_root), "m1": str(m1), "m2": str(m2),
           "emb_cache": str(sd.emb_cache) if sd.emb_cache else None, "prep_s": sd.prep_s, "teacher": teacher}
    (out / SEED_RECORD).write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
    return sd


def arm_command(sd: SeedData, arm: str, run_dir: Path, epochs: int, num_processes: int) -> list[str]:
    """``distill train --config demo --recipe ARM`` on the seed's inputs (the demo's own flags)."""
    from distill.demo.stages import TRAIN_MODULE, train_args, train_command

    cfg = demo_config(sd.seed, 1, 1, sd.root)
    cfg.num_processes = num_processes
    cmd = train_command(cfg, sd.data_root, sd.m1, sd.m2, run_dir)
    recipe, flags = ARM_FLAGS.get(arm, (arm, ()))
    args = train_args(cmd) + ["--recipe", recipe, *flags, "--epochs", str(epochs), "--seed", str(sd.seed),
                              "--log_every", "1"]
    if num_processes > 1:
        return cmd[: cmd.index(TRAIN_MODULE) + 1] + args
    return [sys.executable, "-m", TRAIN_MODULE, *args]


def generated_styles(rows) -> dict[str, dict[str, list[int]]]:
    """Per student, per style it wrote its test answers in: ``[answers, correct]``, from the run's
    ``eval/predictions.jsonl`` rows (``(line, row)`` pairs). Why: greedy decoding commits each student
    to one style per question, and the mix differs from run to run; this shows how much of an arm's
    accuracy is which style it happened to generate (bench/RESULTS.md)."""
    from distill.demo.teacher import style_of

    out: dict[str, dict[str, list[int]]] = {}
    for _, row in rows:
        for key in ("s1", "s2"):
            if isinstance(row.get(key), dict):
                cell = out.setdefault(key, {}).setdefault(style_of(row[key].get("text", "")), [0, 0])
                cell[0] += 1
                cell[1] += int(bool(row[key].get("correct")))
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def run_arm(sd: SeedData, arm: str, epochs: int, num_processes: int, threads: int,
            resume: bool = False, record_cpu: bool = True) -> dict[str, Any]:
    """One training run; returns its record (accuracies, epoch times, last-epoch routing, wall time).
    With ``resume``, a finished run of the identical command is read back instead of rerun.
    ``record_cpu`` False (runs in parallel: the children's CPU time is not this run's alone) records
    ``cpu_s`` as None."""
    from distill.data.jsonl import iter_jsonl
    from distill.demo.stages import read_json, run_logged

    run_dir = sd.root / "runs" / arm
    cmd = arm_command(sd, arm, run_dir, epochs, num_processes)
    if resume and (run_dir / RUN_RECORD).is_file():
        rec = json.loads((run_dir / RUN_RECORD).read_text(encoding="utf-8"))
        if rec.get("command") == cmd:
            return {**rec, "resumed": True}
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    routed = ARM_FLAGS.get(arm, (arm,))[0] in ("routing_only", "full", "random_routing")
    if routed and sd.emb_cache is not None:
        shutil.copytree(sd.emb_cache, run_dir / "emb_cache", copy_function=os.link)
    env = {"ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": str(max(1, threads // num_processes)),
           "TOKENIZERS_PARALLELISM": "false"}
    import resource

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_logged(f"train {arm} seed {sd.seed}", cmd, sd.root / "logs" / f"train_{arm}.log", env=env)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the whole run (start-up and evaluation included): other users' load on a shared
    # machine inflates wall time much more than it inflates this
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime) if record_cpu else None
    metrics = read_json(run_dir / "eval" / "metrics.json")
    records = [r for _, r in iter_jsonl(run_dir / "metrics.jsonl")]
    logs = sorted(run_dir.glob("router_logs_epoch*.jsonl"), key=lambda p: int(p.stem.removeprefix("router_logs_epoch")))
    routing = None
    if logs and not arm.startswith("solo"):
        routing = last_epoch_routing([r for _, r in iter_jsonl(logs[-1])])
    summary = read_json(run_dir / "train_summary.json")
    gen = generated_styles(iter_jsonl(run_dir / "eval" / "predictions.jsonl"))
    rec = {"arm": arm, "seed": sd.seed, "acc": arm_accuracies(arm, metrics), "eval": metrics,
            "time": epoch_times(records), "routing": routing, "wall_s": wall, "cpu_s": cpu_s,
            "load_avg": [load0, os.getloadavg()[0]], "steps": summary.get("steps"),
            "paths": summary.get("paths"), "warnings": summary.get("warnings", []),
            "gen_styles": gen,
            "final_loss": {k: records[-1].get(k) for k in ("loss_s1", "loss_s2", "nll1", "nll2") if k in records[-1]},
            "command": cmd, "run_dir": str(run_dir)}
    (run_dir / RUN_RECORD).write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
    return rec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"small sizes: {QUICK['n_train']} train / {QUICK['n_test']} test, {QUICK['epochs']} epochs, "
                         f"{QUICK['seeds']} seeds (~10 min on 2 cores)")
    ap.add_argument("--n_train", type=int, default=None, help=f"train questions (default {DEFAULT['n_train']})")
    ap.add_argument("--n_test", type=int, default=None, help=f"test questions (default {DEFAULT['n_test']})")
    ap.add_argument("--epochs", type=int, default=None, help=f"epochs of every arm (default {DEFAULT['epochs']})")
    ap.add_argument("--seeds", default=None,
                    help="N (seeds 0..N-1) or a comma list; each is the data, teacher and training seed "
                         f"(default {DEFAULT['seeds']})")
    ap.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                    help=f"comma list of arms (default {','.join(DEFAULT_ARMS)}; also: "
                         f"{', '.join(a for a in ARMS if a not in DEFAULT_ARMS)})")
    ap.add_argument("--method", default="full",
                    help="the arm the comparisons are about: its ensemble against every other arm (default full)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="training runs at once (each with --threads threads); >1 shares the cores, so epoch "
                         "times are upper bounds and the per-run CPU seconds are not recorded")
    ap.add_argument("--num_processes", type=int, default=1,
                    help="1: python -m distill.commands.train; >1: accelerate launch on that many CPU processes")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="CPU threads per run (all processes)")
    ap.add_argument("--out", default="runs/bench_ablation", help="output folder (default runs/bench_ablation)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    ap.add_argument("--no_plot", action="store_true", help="skip the PNG")
    ap.add_argument("--rerender", action="store_true",
                    help="only recompute the summary, table and plot from OUT/results.json (no training)")
    ap.add_argument("--resume", action="store_true",
                    help="reuse seeds and finished runs of an earlier call with the same --out and sizes (after a "
                         "crash or a failed run); by default every run starts fresh")
    args = ap.parse_args(argv)
    base = QUICK if args.quick else DEFAULT
    args.n_train = args.n_train or base["n_train"]
    args.n_test = args.n_test or base["n_test"]
    args.epochs = args.epochs or base["epochs"]
    seeds = args.seeds or str(base["seeds"])
    args.seed_list = [int(s) for s in seeds.split(",")] if "," in seeds else list(range(int(seeds)))
    args.arm_list = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arm_list if a not in ARMS]
    if bad or not args.arm_list:
        ap.error(f"--arms: unknown {bad}; choose from {', '.join(ARMS)}")
    if not args.seed_list:
        ap.error("--seeds: need at least one seed")
    if args.method not in args.arm_list:
        ap.error(f"--method {args.method}: not among --arms ({', '.join(args.arm_list)})")
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rerender:
        doc = rerender(Path(args.out).resolve())
        print(json.dumps(doc, default=str) if args.json else doc["table_md"])
        return 0
    if not args.json:
        return _main(args)
    # --json: stdout carries only the JSON object; anything else printed (e.g. DeepSpeed's import-time
    # log line, which goes to the process's stdout) is sent to stderr at the file-descriptor level
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        doc: dict[str, Any] = {}
        rc = _main(args, doc)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    if doc:
        print(json.dumps(doc, default=str), flush=True)
    return rc


def _main(args: argparse.Namespace, doc_out: dict[str, Any] | None = None) -> int:
    err = sys.stderr if args.json else sys.stdout
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f}s] {msg}", file=err, flush=True)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    inputs = {"n_train": args.n_train, "n_test": args.n_test, "epochs": args.epochs, "seeds": args.seed_list,
              "arms": args.arm_list, "method": args.method, "jobs": args.jobs, "num_processes": args.num_processes, "threads": args.threads,
              "train_config": "demo", "preset": "probe (distill.demo.config.probe_config)",
              "launch": "accelerate launch (cpu_ddp)" if args.num_processes > 1 else "python -m distill.commands.train",
              "machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}, "git": git_state()}
    results: dict[str, list[dict[str, Any]]] = {a: [] for a in args.arm_list}
    seeds_info = []
    try:
        seeds = []
        for seed in args.seed_list:
            sd = prepare_seed(seed, args.n_train, args.n_test, out / f"seed{seed}", log, args.resume)
            seeds.append(sd)
            seeds_info.append({"seed": seed, "prep_s": sd.prep_s, "teacher": sd.teacher, "model1": str(sd.m1),
                               "model2": str(sd.m2)})

        def one(task: tuple[SeedData, str]) -> dict[str, Any]:
            sd, arm = task
            rec = run_arm(sd, arm, args.epochs, args.num_processes, args.threads, args.resume,
                          record_cpu=args.jobs == 1)
            a = rec["acc"]
            tag = "(resumed) " if rec.get("resumed") else ""
            log(f"seed {sd.seed} {arm:<15} {tag}s1 {_fmt(a['s1'])} s2 {_fmt(a['s2'])} ens {_fmt(a['ensemble'])}  "
                f"epoch {rec['time']['mean_epoch_s']:.1f} s  run {rec['wall_s']:.0f} s")
            return rec

        tasks = [(sd, arm) for sd in seeds for arm in args.arm_list]
        if args.jobs == 1:
            recs = [one(t) for t in tasks]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                recs = list(pool.map(one, tasks))  # in task order: seed order within each arm
        for (_, arm), rec in zip(tasks, recs):
            results[arm].append(rec)
    except Exception as exc:  # a failure to run: say what failed, exit 1
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"bench ablation: failed: {exc}", file=sys.stderr)
        return 1
    inputs["machine"]["load_avg_end"] = os.getloadavg()[0]
    doc = render(out, inputs, results, seeds_info, time.perf_counter() - t_start, plot_png=not args.no_plot)
    if doc_out is not None:
        doc_out.update(doc)
    else:
        print()
        print(doc["table_md"])
        print(f"\nwall time {doc['wall_s']:.0f} s; results {out / 'results.json'}"
              + (f"; plot {doc['plot']}" if doc["plot"] else ""))
    return 0


def render(out: Path, inputs: dict[str, Any], results: dict[str, list[dict[str, Any]]], seeds_info: list[dict],
           wall: float, plot_png: bool = True) -> dict[str, Any]:
    """Summary, markdown and PNG from the run records; writes ``OUT/results.json`` and ``OUT/table.md``."""
    summary = summarize(results, method=inputs.get("method", "full"))
    table = format_table(summary, inputs)
    routing_md = format_routing(summary["routing_styles"])
    if routing_md:
        table += "\n\n" + routing_md
    title = (f"QR-Distill ablation: {inputs['n_train']} train / {inputs['n_test']} test, {inputs['epochs']} epochs, "
             f"{len(inputs['seeds'])} seed(s), mean ± 95% t-interval")
    png = str(plot(summary, out / "ablation.png", title)) if plot_png else None
    doc = {"bench": "ablation", "inputs": inputs, "wall_s": wall, "summary": summary, "table_md": table,
           "plot": png, "seeds": seeds_info, "runs": results}
    (out / "results.json").write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    return doc


def rerender(out: Path) -> dict[str, Any]:
    """``--rerender``: recompute the summary, table and plot of ``OUT/results.json`` (no training)."""
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return render(out, doc["inputs"], doc["runs"], doc.get("seeds", []), doc["wall_s"], plot_png=bool(doc.get("plot")))


def git_state() -> dict[str, Any]:
    """The checkout's commit and whether it had uncommitted changes (several people edit this tree)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty_files": len(git("status", "--porcelain").splitlines())}


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}"


if __name__ == "__main__":
    sys.exit(main())
