"""The run report: a real short training run writes ``report.md`` and PNGs that hold their series.

A PNG "holds a series" when pixels of the series' colour lie inside the axes box (the legend sits
outside it, so a legend alone does not count); an empty axes, and a series drawn off the visible
range, fail that check (the negative controls). ``distill report RUN`` regenerates the report from
the run folder, with before/after evaluation bars whose heights follow the accuracies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distill.train.report import PNGS, write_report, write_report_safely
from distill.train.report_plots import PALETTE, axes_box, bar_plot, line_plot

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "launch" / "train_moe.py"


def series_pixels(png: Path, color: str, tol: float = 0.06) -> int:
    """Pixels of ``color`` inside the axes box of a report PNG (decoded with matplotlib)."""
    import matplotlib.colors
    import matplotlib.image

    img = matplotlib.image.imread(str(png))
    r0, r1, c0, c1 = axes_box(img.shape[1], img.shape[0])
    crop = img[r0:r1, c0:c1, :3]
    return int((np.abs(crop - np.array(matplotlib.colors.to_rgb(color))).max(axis=-1) < tol).sum())


def all_pixels(png: Path, color: str, tol: float = 0.06) -> int:
    import matplotlib.colors
    import matplotlib.image

    img = matplotlib.image.imread(str(png))[..., :3]
    return int((np.abs(img - np.array(matplotlib.colors.to_rgb(color))).max(axis=-1) < tol).sum())


def write_run_folder(d: Path) -> Path:
    """A two-student run folder in the engine's formats (keys as a real run writes them; 8 steps, 2 epochs)."""
    d.mkdir(parents=True)
    (d / "train_config.json").write_text(json.dumps({"task": "arith", "model1": "m1", "model2": "m2", "is_sft": False,
                                                     "routing": "learned", "peer": "auto"}))
    (d / "train_summary.json").write_text(json.dumps({"steps": 8, "total_steps": 8, "paths": 16, "world": 1,
                                                      "tokens_per_s": 600.0, "peak_rss_gib": 0.5, "warnings": []}))
    recs = [{"step": s, "epoch": 1 + (s > 4), "loss": 12 - s / 4, "loss_s1": 6.2 - s / 20, "loss_s2": 5.9 - s / 25,
             "nll1": 6.2, "nll2": 5.9, "peer": 0.8 - s / 50, "peer_pairs": 26.0, "peer_student_loss": 1.0 + (s % 3) / 5,
             "peer_w1": 0.5 + s / 100, "peer_weight_loss": 0.6, "router_aux": -0.1, "step_time_s": 0.2,
             "lr_student1": 5e-3} for s in range(1, 9)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    for e in (1, 2):
        rows = [{"id": f"q{i}", "path_idx": p, "style": style, "route": [1, 2, "both"][(i + p + e) % 3],
                 "probs": [0.3, 0.3, 0.4], "nll": [6.2, 5.9], "correct": True}
                for i in range(8) for p, style in ((0, "cot"), (2, "pot"))]
        (d / f"router_logs_epoch{e}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "eval").mkdir()
    (d / "eval" / "metrics.json").write_text(json.dumps({"n": 4, "acc_s1": 0.0, "acc_s2": 0.0, "acc_ensemble": 0.0,
                                                         "acc_oracle": 0.0, "ensemble_rule": "logprob_per_byte"}))
    return d


def check_two_student_report(run: Path) -> str:
    """Every PNG is referenced and holds each of its series inside the axes; returns report.md's text."""
    text = (run / "report.md").read_text()
    for name in PNGS.values():
        assert f"]({name})" in text and (run / name).is_file(), name
    two = [PALETTE[0], PALETTE[1]]
    assert all(series_pixels(run / PNGS["loss"], c) > 150 for c in two)  # student 1, student 2
    assert all(series_pixels(run / PNGS["routing"], c) > 80 for c in two)  # styles cot, pot (2 epochs)
    assert all(series_pixels(run / PNGS["peer"], c) > 150 for c in PALETTE[:3])  # peer, student, weight losses
    assert series_pixels(run / PNGS["weight"], PALETTE[0]) > 150
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    trained = sum(metrics[k] or 0 for k in ("acc_s1", "acc_s2", "acc_ensemble", "acc_oracle"))
    bars = series_pixels(run / PNGS["eval"], PALETTE[0])  # only a "trained" group: the first colour
    assert (bars > 100) == (trained > 0), (bars, trained)  # an all-zero evaluation draws no bar at all
    rates = [line for line in text.splitlines() if line.startswith("| 2 | cot |")]
    assert len(rates) == 1 and "%" in rates[0]
    assert "| trained |" in text and "no base row" in text
    return text


def test_report_of_a_run_folder_holds_every_series(tmp_path):
    run = write_run_folder(tmp_path / "run")
    write_report(run)
    text = check_two_student_report(run)
    assert "| 1 | cot | 8 | 62.5% | 75.0% |" in text  # routes 1,2,both cycling: s1 = 1 or both
    assert "last w1: 0.580 (step 8)" in text


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_llama, tiny_gpt2, tiny_train_data):
    """A real 2-epoch run (learned routing, peer teaching, a tiny evaluation at the end) and its stderr."""
    out = tmp_path_factory.mktemp("report_run") / "run"
    cmd = [sys.executable, str(TRAIN), "--task", "arith", "--model1", str(tiny_llama), "--model2", str(tiny_gpt2),
           "--data_root", str(tiny_train_data), "--outdir", str(out), "--epochs", "2", "--bs", "4", "--seed", "7",
           "--lr_s1", "5e-3", "--lr_s2", "5e-3", "--lora_r", "4", "--eval_at_end", "true", "--max_new_tokens", "4",
           "--eval_limit", "2"]
    env = {k: v for k, v in os.environ.items() if k != "DISTILL_NO_PROGRESS"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stderr


@pytest.mark.slow  # a real end-to-end training run: ~25 s on an idle 2-core CPU, ~50 s on a loaded one
def test_training_writes_report_whose_pngs_hold_their_series(trained_run):
    run, stderr = trained_run
    assert "warning: report not written" not in stderr
    check_two_student_report(run)


@pytest.mark.slow  # shares the real training run above
def test_training_bar_has_rate_and_eta_and_one_summary_line(trained_run):
    _, stderr = trained_run
    import re

    assert re.search(r"train: 100%\|.*\| 8/8 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(s/step|step/s)", stderr), stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("train: 8 steps in")]
    assert len(lines) == 1 and "steps/s" in lines[0] and "report.md" in lines[0], stderr[-2000:]


@pytest.mark.parametrize("base_in", ["sub_dict", "base_folder"])
def test_report_command_draws_before_after_bars(tmp_path, capsys, base_in):
    from distill.commands import main

    run = write_run_folder(tmp_path / "run")
    after = {"acc_s1": 0.5, "acc_s2": 0.25, "acc_ensemble": 0.75, "acc_oracle": 1.0}
    before = {"acc_s1": 0.25, "acc_s2": 0.0, "acc_ensemble": 0.25, "acc_oracle": 0.5}
    metrics = {**json.loads((run / "eval" / "metrics.json").read_text()), **after}
    if base_in == "sub_dict":  # what the evaluation table writes
        metrics["base"] = {"n": metrics["n"], **before}
    else:  # `distill eval --base` alone: RUN/eval/base/metrics.json
        (run / "eval" / "base").mkdir()
        (run / "eval" / "base" / "metrics.json").write_text(json.dumps({"n": metrics["n"], **before}))
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    assert main(["report", str(run)]) == 0
    assert "report written to" in capsys.readouterr().out
    text = (run / "report.md").read_text()
    assert "| base (untrained) | 25.0% | 0.0% | 25.0% | 50.0% |" in text
    assert "| trained | 50.0% | 25.0% | 75.0% | 100.0% |" in text
    png = run / PNGS["eval"]
    base_px, trained_px = series_pixels(png, PALETTE[0]), series_pixels(png, PALETTE[1])
    assert base_px > 0 and trained_px / base_px == pytest.approx(sum(after.values()) / sum(before.values()), rel=0.1)


def test_missing_pieces_are_sentences_not_errors(tmp_path):
    solo = tmp_path / "solo"
    solo.mkdir()
    (solo / "train_config.json").write_text(json.dumps({"task": "arith", "model1": "m", "is_sft": True,
                                                        "routing": "all", "peer": "none"}))
    (solo / "metrics.jsonl").write_text("".join(json.dumps(
        {"step": s, "epoch": 1, "loss": 6 - s / 10, "loss_s1": 6 - s / 10, "loss_s2": 0.0, "nll1": 6 - s / 10,
         "nll2": 0.0, "step_time_s": 0.1, "lr_student1": 2e-4}) + "\n" for s in range(1, 6)))
    (solo / PNGS["eval"]).write_bytes(b"stale")  # from an older report: must not survive
    text = write_report(solo).read_text()
    assert "one student" in text and "nothing to route" in text and "no peer teaching" in text
    assert "no evaluation yet" in text and "no train_summary.json yet" in text
    assert sorted(p.name for p in solo.glob("*.png")) == [PNGS["loss"]]
    assert series_pixels(solo / PNGS["loss"], PALETTE[0]) > 150 and series_pixels(solo / PNGS["loss"], PALETTE[1]) == 0

    pair = tmp_path / "pair"  # two students, learned routing, but no router logs and no peer statistics yet
    pair.mkdir()
    (pair / "train_config.json").write_text(json.dumps({"is_sft": False, "routing": "learned", "peer": "none"}))
    (pair / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss_s1": 6.0, "loss_s2": 5.0}) + "\n")
    text = write_report(pair).read_text()
    assert "no router logs" in text and "no peer statistics" in text and "no evaluation yet" in text


def test_empty_or_off_range_plot_fails_the_series_check(tmp_path):
    """Negative controls: the check must be able to fail."""
    empty = tmp_path / "empty.png"
    line_plot(empty, "nothing", "step", "loss", {})
    assert all(series_pixels(empty, c) == 0 for c in PALETTE)
    bars = tmp_path / "bars.png"
    bar_plot(bars, "all zero", "accuracy", ["s1", "s2"], {"trained": [0.0, 0.0]})
    assert series_pixels(bars, PALETTE[0]) == 0
    off = tmp_path / "off.png"  # the series exists (in the legend) but lies outside the visible range
    line_plot(off, "off range", "epoch", "share", {"s1": ([1, 2], [5.0, 6.0])}, ylim=(0.0, 1.0))
    assert all_pixels(off, PALETTE[0]) > 0 and series_pixels(off, PALETTE[0]) == 0
    drawn = tmp_path / "drawn.png"
    line_plot(drawn, "drawn", "epoch", "share", {"s1": ([1, 2], [0.2, 0.8])}, ylim=(0.0, 1.0))
    assert series_pixels(drawn, PALETTE[0]) > 100


def test_a_broken_run_file_is_one_warning_at_the_end_of_training_and_one_error_from_the_command(tmp_path, capsys):
    from distill.commands import main

    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss_s1": 1.0}) + "\n{not json\n")
    assert write_report_safely(tmp_path) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: report not written") and "metrics.jsonl:2" in err[0]
    assert not (tmp_path / "report.md").exists()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.jsonl:2" in err[0]
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err
