"""The run report: ``report.md`` with PNGs beside ``metrics.jsonl``, from the run folder alone.

Written at the end of training (main process) and by ``distill report RUN``. What it reads:

- ``metrics.jsonl``: ``step``, ``loss_s1`` / ``loss_s2`` (each student's loss; ``nll1`` / ``nll2`` when
  absent), ``peer``, ``peer_student_loss``, ``peer_weight_loss`` (peer-teaching terms) and ``peer_w1``
  (student 1's weight in the learned ensemble); the last record of a step wins (resumed runs).
- ``router_logs_epoch{e}.jsonl`` through :func:`distill.router.posrate.compute_rates`: the share of
  each style's paths routed to each student, per epoch.
- ``eval/metrics.json``: ``acc_s1``, ``acc_s2``, ``acc_ensemble``, ``acc_oracle`` and ``n`` (after
  training); the untrained students' row (the same ``acc_*`` keys) from its ``base`` sub-dict (what the
  evaluation table writes; also ``before``), else from ``eval/base/metrics.json`` (``distill eval --base``).
- ``train_config.json`` (task, models, ``is_sft``, ``routing``, ``peer``) and ``train_summary.json``
  (steps, paths, ``tokens_per_s``, ``peak_rss_gib``, ``warnings``).

A missing piece (no evaluation yet, one student, no router logs, peer teaching off) is a sentence in
the report, never an error; a file that exists but does not parse is a one-line ``DataError``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from distill.data.jsonl import DataError, atomic_write_text, iter_jsonl
from distill.errors import ConfigError

REPORT_FILE = "report.md"
#: piece -> PNG file name (beside metrics.jsonl)
PNGS = {"loss": "report_loss.png", "routing": "report_routing.png", "peer": "report_peer.png",
        "weight": "report_ensemble_weight.png", "eval": "report_eval.png"}
ACC_KEYS = (("acc_s1", "student 1"), ("acc_s2", "student 2"), ("acc_ensemble", "ensemble"), ("acc_oracle", "oracle"))
PEER_KEYS = (("peer", "peer term (total)"), ("peer_student_loss", "students' peer loss"),
             ("peer_weight_loss", "ensemble-weight loss"))


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(path, getattr(exc, "lineno", None), f"not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataError(path, None, "expected a JSON object")
    return obj


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` by step (the last record of a step wins)."""
    by_step: dict[int, dict[str, Any]] = {}
    for lineno, rec in iter_jsonl(path):
        if not isinstance(rec.get("step"), int):
            raise DataError(path, lineno, "field 'step' must be an integer")
        by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def base_accuracies(metrics: dict[str, Any], eval_dir: Path) -> dict[str, Any] | None:
    """The untrained students' accuracies: ``eval/metrics.json``'s ``base`` (or ``before``) sub-dict, else
    ``eval/base/metrics.json``; ``None`` when neither holds an ``acc_*`` number."""
    for cand in (metrics.get("base"), metrics.get("before"), _read_json(eval_dir / "base" / "metrics.json")):
        if isinstance(cand, dict) and any(isinstance(cand.get(k), (int, float)) for k, _ in ACC_KEYS):
            return cand
    return None


class _Report:
    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.lines: list[str] = []
        self.plotted: set[str] = set()

    def png(self, piece: str) -> Path:
        self.plotted.add(piece)
        return self.dir / PNGS[piece]

    def image(self, piece: str, alt: str) -> None:
        self.lines += [f"![{alt}]({PNGS[piece]})", ""]


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN/report.md`` and its PNGs from the run folder; returns the report's path."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ConfigError(f"{d}: no such run folder")
    metrics_path = d / "metrics.jsonl"
    cfg = _read_json(d / "train_config.json") or {}
    summary = _read_json(d / "train_summary.json") or {}
    if not metrics_path.is_file() and not summary:
        raise ConfigError(f"{d}: not a training run folder (no metrics.jsonl or train_summary.json)")
    rows = read_metrics(metrics_path) if metrics_path.is_file() else []
    solo = bool(cfg.get("is_sft")) if "is_sft" in cfg else not any(r.get("loss_s2") for r in rows)
    rep = _Report(d)
    _header(rep, d, cfg, summary, solo)
    _loss(rep, rows, solo)
    _routing(rep, d, cfg, solo)
    _peer(rep, rows, solo)
    _eval(rep, d, solo)
    for w in summary.get("warnings") or []:
        rep.lines.append(f"- warning: {w}")
    for piece, name in PNGS.items():  # a piece gone since the last report leaves no stale picture
        if piece not in rep.plotted and (d / name).is_file():
            (d / name).unlink()
    out = d / REPORT_FILE
    atomic_write_text(out, "\n".join(rep.lines).rstrip() + "\n")
    return out


def write_report_safely(run_dir: str | Path) -> Path | None:
    """:func:`write_report` for the end of training: any failure is one warning line on stderr, never an
    exception -- the run is finished and its students are saved, a plot must not fail it."""
    try:
        return write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 -- reported, and the run stays successful
        msg = (str(exc).strip().splitlines() or [""])[0]
        print(f"warning: report not written ({type(exc).__name__}: {msg}); retry with `distill report {run_dir}`",
              file=sys.stderr)
        return None


def _header(rep: _Report, d: Path, cfg: dict, summary: dict, solo: bool) -> None:
    rep.lines += [f"# Training report: {d.name}", ""]
    models = f"student 1 `{cfg.get('model1', '?')}`" + ("" if solo else f", student 2 `{cfg.get('model2', '?')}`")
    rep.lines.append(f"task `{cfg.get('task', '?')}`; {models}; routing `{cfg.get('routing', '?')}`, "
                     f"peer `{cfg.get('peer', '?')}`" + ("; one student (`is_sft`)" if solo else ""))
    facts = []
    if "steps" in summary:
        facts.append(f"{summary['steps']}/{summary.get('total_steps', '?')} optimizer steps")
    if "paths" in summary:
        facts.append(f"{summary['paths']} training paths")
    if isinstance(summary.get("tokens_per_s"), (int, float)):
        facts.append(f"{summary['tokens_per_s']:.0f} tokens/s")
    if isinstance(summary.get("peak_rss_gib"), (int, float)):
        facts.append(f"peak RSS {summary['peak_rss_gib']:.2f} GiB")
    rep.lines += ["", "; ".join(facts) if facts else "no train_summary.json yet (training unfinished?)", ""]


def _loss(rep: _Report, rows: list[dict], solo: bool) -> None:
    from distill.train.report_plots import line_plot

    rep.lines += ["## Loss per student", ""]
    series = {}
    for k, (key, fallback) in enumerate((("loss_s1", "nll1"), ("loss_s2", "nll2"))):
        if k == 1 and solo:
            continue
        xs, ys = _series(rows, key)
        xs, ys = (xs, ys) if xs else _series(rows, fallback)
        if xs:
            series[f"student {k + 1}"] = (xs, ys)
    if not series:
        rep.lines += ["no loss records in metrics.jsonl yet", ""]
        return
    line_plot(rep.png("loss"), "training loss per student", "optimizer step", "loss (mean token NLL)", series)
    rep.image("loss", "loss per student")
    last = ", ".join(f"{name} {ys[-1]:.4f} (step {xs[-1]})" for name, (xs, ys) in series.items())
    rep.lines += [f"last logged: {last}", ""]


def _routing(rep: _Report, d: Path, cfg: dict, solo: bool) -> None:
    from distill.router.posrate import LOG_RE, compute_rates
    from distill.train.report_plots import PALETTE, line_plot

    rep.lines += ["## Routing", ""]
    if solo:
        rep.lines += ["one student: nothing to route", ""]
        return
    if cfg.get("routing") == "all":
        rep.lines += ["routing `all`: every path trains both students; no routing share to show", ""]
        return
    if not any(LOG_RE.match(p.name) for p in d.iterdir()):
        rep.lines += ["no router logs (router_logs_epoch*.jsonl) in this run folder yet", ""]
        return
    rates = compute_rates(d)
    epochs = list(rates["per_epoch"])
    series, colors, dashed = {}, {}, []
    for i, style in enumerate(rates["all"]):
        for s in (1, 2):
            label = f"{style} → s{s}"
            series[label] = ([int(e) for e in epochs],
                             [rates["per_epoch"][e].get(style, {}).get(f"student{s}", float("nan")) for e in epochs])
            colors[label] = PALETTE[i % len(PALETTE)]
            dashed += [label] if s == 2 else []
    line_plot(rep.png("routing"), "share of each style's paths sent to each student (dashed: student 2)",
              "epoch", "share of paths", series, dashed=dashed, colors=colors, ylim=(-0.03, 1.03))
    rep.image("routing", "routing share per style per epoch")
    rep.lines += ["| epoch | style | paths | to student 1 | to student 2 |", "|---|---|---|---|---|"]
    for e in epochs:
        for style, r in rates["per_epoch"][e].items():
            rep.lines.append(f"| {e} | {style} | {r['count']} | {r['student1']:.1%} | {r['student2']:.1%} |")
    rep.lines.append("")


def _peer(rep: _Report, rows: list[dict], solo: bool) -> None:
    from distill.train.report_plots import line_plot

    rep.lines += ["## Peer teaching", ""]
    series = {label: s for key, label in PEER_KEYS if (s := _series(rows, key))[0]}
    if solo or not series:
        rep.lines += ["one student: no peer teaching" if solo else "no peer statistics in metrics.jsonl "
                      "(peer teaching off, or no step had aligned pairs)", ""]
        return
    line_plot(rep.png("peer"), "peer-teaching losses", "optimizer step", "loss", series)
    rep.image("peer", "peer losses")
    xs, ys = _series(rows, "peer_w1")
    if xs:
        line_plot(rep.png("weight"), "learned ensemble: weight of student 1 (student 2: 1 - w1)",
                  "optimizer step", "w1", {"w1 (student 1)": (xs, ys)}, ylim=(0.0, 1.0))
        rep.image("weight", "ensemble weight")
        rep.lines += [f"last w1: {ys[-1]:.3f} (step {xs[-1]})", ""]


def _eval(rep: _Report, d: Path, solo: bool) -> None:
    from distill.train.report_plots import bar_plot

    rep.lines += ["## Evaluation", ""]
    metrics = _read_json(d / "eval" / "metrics.json")
    base = base_accuracies(metrics or {}, d / "eval")
    if metrics is None and base is None:
        rep.lines += [f"no evaluation yet (no eval/metrics.json): run `distill eval --run {d} --task TASK --test "
                      f"TEST.jsonl`, then `distill report {d}`", ""]
        return
    rows = {"base (untrained)": base, "trained": metrics}
    rows = {k: v for k, v in rows.items() if v is not None}
    keys = [(k, label) for k, label in ACC_KEYS
            if any(isinstance(r.get(k), (int, float)) for r in rows.values()) and not (solo and k == "acc_s2")]
    if not keys:
        rep.lines += ["eval/metrics.json holds no accuracies (acc_s1, acc_s2, acc_ensemble, acc_oracle)", ""]
        return
    acc = {name: [r.get(k) if isinstance(r.get(k), (int, float)) else None for k, _ in keys]
           for name, r in rows.items()}
    bar_plot(rep.png("eval"), f"test accuracy (n = {(metrics or base).get('n', '?')})", "accuracy",
             [label for _, label in keys], acc)
    rep.image("eval", "evaluation accuracy")
    rep.lines += ["| | " + " | ".join(label for _, label in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, vals in acc.items():
        rep.lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.1%}" for v in vals) + " |")
    if base is None:
        rep.lines += ["", "no base row: `distill eval --base` adds the untrained students for a before/after view"]
    if metrics is None:
        rep.lines += ["", "no evaluation of the trained students yet (no eval/metrics.json)"]
    rep.lines.append("")
