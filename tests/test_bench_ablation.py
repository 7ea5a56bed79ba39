"""bench/bench_ablation.py: the pure parts (Student-t interval, per-arm shaping, targets, table, JSON)
with known values, and one tiny end-to-end run (slow) of real ``distill train`` launches."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_ablation as ba  # noqa: E402


def test_t_interval_known_value():
    # [1, 2, 3]: mean 2, sd 1, t(0.975, df=2) = 4.302653 -> half-width 4.302653 / sqrt(3) = 2.484138
    iv = ba.t_interval([1.0, 2.0, 3.0])
    assert iv.n == 3 and iv.mean == pytest.approx(2.0) and iv.sd == pytest.approx(1.0)
    assert iv.half == pytest.approx(2.484138, abs=1e-5)
    assert (iv.lo, iv.hi) == (pytest.approx(2 - 2.484138, abs=1e-5), pytest.approx(2 + 2.484138, abs=1e-5))
    # None values (e.g. a solo arm's missing student) are skipped; one value has no interval
    one = ba.t_interval([None, 0.5])
    assert (one.mean, one.lo, one.hi, one.n) == (0.5, None, None, 1)
    assert ba.t_interval([]).mean is None
    # identical values: zero-width interval
    assert ba.t_interval([0.3, 0.3, 0.3]).half == pytest.approx(0.0)


def test_t_quantile_fallback_table_matches_scipy(monkeypatch):
    with_scipy = [ba.t_quantile(df) for df in (1, 2, 4, 30)]
    assert with_scipy[1] == pytest.approx(4.302653, abs=1e-5)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import now raises ImportError
    assert [ba.t_quantile(df) for df in (1, 2, 4, 30)] == pytest.approx(with_scipy, abs=1e-3)
    assert ba.t_quantile(1000) == pytest.approx(1.962, abs=2e-3)
    with pytest.raises(ValueError):
        ba.t_quantile(0)


def test_arm_accuracies_names_the_student_trained():
    solo = {"acc_s1": 0.4, "acc_s2": None, "acc_ensemble": 0.4, "acc_oracle": 0.4, "acc_best_single": 0.4}
    assert ba.arm_accuracies("solo1", solo)["s1"] == 0.4 and ba.arm_accuracies("solo1", solo)["ensemble"] is None
    s2 = ba.arm_accuracies("solo2", solo)  # solo2's only model (model1 := model2) is student 2
    assert (s2["s1"], s2["s2"], s2["ensemble"]) == (None, 0.4, None)
    two = {"acc_s1": 0.1, "acc_s2": 0.2, "acc_ensemble": 0.25, "acc_oracle": 0.3, "acc_best_single": 0.2}
    assert ba.arm_accuracies("full", two) == {"s1": 0.1, "s2": 0.2, "ensemble": 0.25, "oracle": 0.3, "best_single": 0.2}
    with pytest.raises(ValueError, match="lack"):
        ba.arm_accuracies("full", solo)


def test_epoch_times_and_last_epoch_routing():
    recs = [{"epoch": 1, "step_time_s": 1.0}, {"epoch": 1, "step_time_s": 3.0},
            {"epoch": 2, "step_time_s": 2.0}, {"epoch": 2, "step_time_s": 2.0}]
    t = ba.epoch_times(recs)
    assert t["epoch_s"] == {"1": 4.0, "2": 4.0} and t["mean_epoch_s"] == 4.0
    assert t["steps_per_epoch"] == 2 and t["median_step_s"] == 2.0 and t["median_epoch_s"] == 4.0
    with pytest.raises(ValueError):
        ba.epoch_times([])
    rows = [{"style": "tot", "route": 2, "nll": [3.0, 1.0]}, {"style": "tot", "route": "both", "nll": [5.0, 1.0]},
            {"style": "cot", "route": 1, "nll": [0.5, 0.7]}]
    r = ba.last_epoch_routing(rows)
    assert r["tot"] == {"count": 2, "share_s1": 0.5, "share_s2": 1.0, "nll_s1": 4.0, "nll_s2": 1.0}
    assert r["cot"]["share_s1"] == 1.0 and r["cot"]["share_s2"] == 0.0


def _run(arm, seed, s1, s2, ens, epoch_s, tot2=None):
    acc = ba.arm_accuracies(arm, {"acc_s1": s1, "acc_s2": s2, "acc_ensemble": ens, "acc_oracle": ens,
                                  "acc_best_single": max(x for x in (s1, s2) if x is not None)})
    routing = None if tot2 is None else {"tot": {"count": 4, "share_s1": 1 - tot2, "share_s2": tot2, "nll_s1": 2.0,
                                                 "nll_s2": 1.0}}
    return {"seed": seed, "acc": acc, "time": {"mean_epoch_s": epoch_s, "median_epoch_s": epoch_s},
            "routing": routing, "wall_s": 10.0 + seed, "cpu_s": 9.0}


def test_generated_styles_counts_answers_and_correct_per_student():
    rows = [{"s1": {"text": "```python\nx = 1\n```", "correct": True}, "s2": {"text": "Facts: a.", "correct": False}},
            {"s1": {"text": "```python\nx = 2\n```", "correct": False}, "s2": {"text": "Forward: 1.", "correct": True}},
            {"s1": {"text": "Ann starts with 3. Step 1: 3 + 1 = 4.", "correct": True}, "s2": {"text": "4", "correct": False}}]
    got = ba.generated_styles(enumerate(rows))
    assert got == {"s1": {"cot": [1, 1], "program": [2, 1]},
                   "s2": {"fwd_bwd": [1, 1], "knowledge": [1, 0], "other": [1, 0]}}


def test_summarize_table_and_json_shaping():
    results = {
        "solo2": [_run("solo2", s, 0.30, None, None, 1.0) for s in (0, 1, 2)],
        "separate": [_run("separate", s, 0.2, 0.3, 0.30 + 0.01 * s, 10.0, tot2=1.0) for s in (0, 1, 2)],
        "full": [_run("full", s, 0.25, 0.35, 0.40 + 0.01 * s, 7.0, tot2=0.9) for s in (0, 1, 2)],
    }
    # solo2's metrics carry its student in acc_s1
    assert results["solo2"][0]["acc"]["s2"] == 0.30
    s = ba.summarize(results)
    full = s["arms"]["full"]
    assert full["ensemble"]["mean"] == pytest.approx(0.41) and full["ensemble"]["n"] == 3
    # 0.40, 0.41, 0.42: sd 0.01 -> half-width 4.302653 * 0.01 / sqrt(3)
    assert full["ensemble"]["hi"] - full["ensemble"]["mean"] == pytest.approx(0.0248414, abs=1e-6)
    assert full["tot_to_s2"]["mean"] == pytest.approx(0.9) and s["arms"]["solo2"]["tot_to_s2"]["mean"] is None
    assert s["time_ratio"]["full_over_separate"] == pytest.approx(0.7) and s["time_ratio"]["met"] is True
    assert s["time_ratio"]["of_means"] == pytest.approx(0.7)
    assert s["probe_routing"]["met"] is True
    comps = {c["vs"]: c for c in s["comparisons"]}
    assert set(comps) == {"separate", "solo2"}  # only arms that ran
    assert comps["separate"]["diff"]["mean"] == pytest.approx(0.10) and comps["separate"]["met"]
    assert comps["separate"]["diff"]["sd"] == pytest.approx(0.0) and comps["separate"]["significant"]
    assert comps["solo2"]["diff"]["mean"] == pytest.approx(0.11)  # full ensemble - solo2's student 2
    inputs = {"n_train": 8, "n_test": 4, "epochs": 1, "seeds": [0, 1, 2], "arms": list(results)}
    table = ba.format_table(s, inputs)
    assert "| full | 25.0 ± 0.0 | 35.0 ± 0.0 | 41.0 ± 2.5 |" in table
    assert "| solo2 | - | 30.0 ± 0.0 | - |" in table
    assert "epoch time full / separate <= 0.8 | 0.70 (fastest seed" in table and "| met |" in table
    json.dumps({"summary": s, "table_md": table})  # everything is JSON-serialisable

    # a miss is reported as such, not hidden
    slow = {k: [dict(r, time={"mean_epoch_s": 12.0, "median_epoch_s": 12.0}) if k == "full" else r for r in v]
            for k, v in results.items()}
    worse = {**slow, "full": [dict(r, acc={**r["acc"], "ensemble": 0.1}) for r in slow["full"]]}
    s2 = ba.summarize(worse)
    assert s2["time_ratio"]["met"] is False and not any(c["met"] for c in s2["comparisons"])
    t2 = ba.format_table(s2, inputs)
    assert "1.20" in t2 and t2.count("NOT met") == 3

    # ahead on average but inside the noise (paired diffs +0.20, -0.05, +0.12): not met, and the table says why
    noisy = {**results, "full": [dict(r, acc={**r["acc"], "ensemble": 0.30 + d}) for r, d in
                                 zip(results["full"], (0.20, -0.05 + 0.01, 0.12 + 0.02))]}
    c3 = {c["vs"]: c for c in ba.summarize(noisy)["comparisons"]}["separate"]
    assert c3["diff"]["mean"] > 0 and c3["diff"]["lo"] < 0 and c3["ahead"] and not c3["met"]
    assert "NOT met (ahead, but the CI includes 0)" in ba.format_table(ba.summarize(noisy), inputs)

    # the verdict uses each arm's fastest seed: one seed slowed by someone else's job cannot fake a "met"
    disturbed = {**results, "separate": [dict(r, time={"mean_epoch_s": 100.0 if r["seed"] == 0 else 6.0,
                                                       "median_epoch_s": 6.0}) for r in results["separate"]]}
    tr = ba.summarize(disturbed)["time_ratio"]
    assert tr["of_means"] == pytest.approx(7.0 / (112.0 / 3)) and tr["of_means"] < 0.8
    assert tr["full_over_separate"] == pytest.approx(7.0 / 6.0) and tr["met"] is False


def test_summarize_about_another_method():
    """``--method full_cov``: the comparisons, time ratio and probe routing are about that arm,
    and ``full`` is one of the arms it is compared with."""
    results = {
        "separate": [_run("separate", s, 0.2, 0.3, 0.30, 10.0, tot2=1.0) for s in (0, 1, 2)],
        "full": [_run("full", s, 0.25, 0.35, 0.35, 11.0, tot2=1.0) for s in (0, 1, 2)],
        "full_cov": [_run("full_cov", s, 0.3, 0.4, 0.45 + 0.01 * s, 9.0, tot2=0.5) for s in (0, 1, 2)],
    }
    s = ba.summarize(results, method="full_cov")
    comps = {c["vs"]: c for c in s["comparisons"]}
    assert set(comps) == {"separate", "full"} and s["method"] == "full_cov"
    assert comps["full"]["diff"]["mean"] == pytest.approx(0.11) and comps["full"]["metric"].startswith("full_cov ")
    assert s["time_ratio"]["full_over_separate"] == pytest.approx(0.9)
    assert s["probe_routing"]["tot_to_s2"] == pytest.approx(0.5) and not s["probe_routing"]["met"]
    table = ba.format_table(s, {"n_train": 8, "n_test": 4, "epochs": 1, "seeds": [0, 1, 2]})
    assert "| full_cov > full (" in table and "epoch time full_cov / separate" in table
    assert "full_cov" in ba.routing_styles(results)  # every routed arm's logs, not a fixed list


def test_parse_args_sizes_and_validation():
    q = ba.parse_args(["--quick"])
    assert (q.n_train, q.n_test, q.epochs, q.seed_list) == (ba.QUICK["n_train"], ba.QUICK["n_test"],
                                                              ba.QUICK["epochs"], [0, 1, 2])
    assert q.arm_list == list(ba.DEFAULT_ARMS) and q.out == "runs/bench_ablation"
    assert q.method == "full" and q.jobs == 1
    a = ba.parse_args(["--seeds", "3,5", "--arms", "full,separate", "--epochs", "2"])
    assert a.seed_list == [3, 5] and a.arm_list == ["full", "separate"] and a.epochs == 2
    with pytest.raises(SystemExit):
        ba.parse_args(["--arms", "full,nope"])
    m = ba.parse_args(["--arms", "separate,full_cov", "--method", "full_cov", "--jobs", "2"])
    assert m.method == "full_cov" and m.jobs == 2 and set(ba.DEFAULT_ARMS) < set(ba.ARMS)
    for bad in (["--arms", "separate,full", "--method", "full_cov"], ["--jobs", "0"]):
        with pytest.raises(SystemExit):
            ba.parse_args(bad)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_bench_end_to_end_tiny(tmp_path):
    out = tmp_path / "abl"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_ablation.py"), "--arms", "separate,full",
                           "--seeds", "1", "--n_train", "12", "--n_test", "4", "--epochs", "2", "--json",
                           "--out", str(out)], capture_output=True, text=True, timeout=380, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    doc = json.loads(proc.stdout)  # stdout is exactly one JSON object
    assert doc["inputs"]["arms"] == ["separate", "full"] and doc["inputs"]["seeds"] == [0]
    assert doc["inputs"]["epochs"] == 2 and doc["inputs"]["n_train"] == 12
    for arm in ("separate", "full"):
        (run,) = doc["runs"][arm]
        assert run["steps"] > 0 and set(run["time"]["epoch_s"]) == {"1", "2"}
        assert all(0.0 <= run["acc"][k] <= 1.0 for k in ("s1", "s2", "ensemble"))
        assert run["eval"]["n"] == 4
        assert "--recipe" in run["command"] and run["command"][run["command"].index("--recipe") + 1] == arm
        assert Path(run["run_dir"], "student2", "adapter_config.json").is_file()
        assert not math.isnan(doc["summary"]["arms"][arm]["epoch_s"]["mean"])
        gen = run["gen_styles"]  # every test answer counted once per student, by the style it was written in
        assert set(gen) == {"s1", "s2"} and all(sum(n for n, _ in gen[k].values()) == 4 for k in gen)
        assert sum(c for _, c in gen["s1"].values()) == round(4 * run["acc"]["s1"])
    # the learned router wrote its last-epoch decisions, per style
    assert set(doc["runs"]["full"][0]["routing"]) == {"cot", "program", "knowledge", "tot", "fwd_bwd"}
    assert doc["summary"]["time_ratio"]["full_over_separate"] > 0
    assert (out / "ablation.png").stat().st_size > 1000
    assert (out / "table.md").read_text().startswith("n_train 12")
    assert json.loads((out / "results.json").read_text())["summary"] == doc["summary"]
    # --resume reads the finished runs back instead of training again (same figures)
    again = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_ablation.py"), "--arms", "separate,full",
                            "--seeds", "1", "--n_train", "12", "--n_test", "4", "--epochs", "2", "--json", "--resume",
                            "--no_plot", "--out", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    doc2 = json.loads(again.stdout)
    assert all(doc2["runs"][a][0].get("resumed") for a in ("separate", "full"))
    assert doc2["summary"]["arms"] == doc["summary"]["arms"]
