"""The evaluation table (distill.students.eval_table / eval_stats / eval_plot): the statistics against
known values, the rows and columns from predictions with known outcomes, the console text and the PNG."""

from __future__ import annotations

import math

import pytest

from distill.students.eval_stats import compare, paired_bootstrap_ci, two_proportion_z


def test_two_proportion_z_test_known_values():
    z, p = two_proportion_z(45, 100, 60, 100)  # pooled 0.525: se = sqrt(.525 * .475 * .02) = 0.070622
    assert z == pytest.approx(0.15 / math.sqrt(0.525 * 0.475 * 0.02)) and z == pytest.approx(2.1240, abs=1e-4)
    assert p == pytest.approx(0.03367, abs=1e-4)
    z2, p2 = two_proportion_z(60, 100, 45, 100)
    assert z2 == pytest.approx(-z) and p2 == pytest.approx(p)  # two-sided, antisymmetric
    assert two_proportion_z(0, 10, 0, 20) == (0.0, 1.0) and two_proportion_z(5, 5, 7, 7) == (0.0, 1.0)
    assert two_proportion_z(50, 100, 50, 100)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        two_proportion_z(3, 2, 1, 1)


def test_paired_bootstrap_interval_matches_the_normal_approximation():
    # 400 pairs: 100 gains, 20 losses, 280 ties -> mean 0.2, sd(d) = sqrt(0.3 - 0.04), se = sd / 20
    before = [False] * 100 + [True] * 20 + [True] * 140 + [False] * 140
    after = [True] * 100 + [False] * 20 + [True] * 140 + [False] * 140
    lo, hi = paired_bootstrap_ci(before, after, n_boot=4000, seed=1)
    half = 1.96 * math.sqrt(0.26) / 20
    assert lo == pytest.approx(0.2 - half, abs=0.008) and hi == pytest.approx(0.2 + half, abs=0.008)
    assert paired_bootstrap_ci([True, False] * 5, [True, False] * 5) == (0.0, 0.0)
    assert paired_bootstrap_ci([False] * 6, [True] * 6) == (1.0, 1.0)
    assert paired_bootstrap_ci(before, after, seed=3) == paired_bootstrap_ci(before, after, seed=3)  # seeded
    c = compare(before, after)
    assert c["diff"] == pytest.approx(0.2) and c["ci95"][0] < 0.2 < c["ci95"][1]
    assert c["p"] == pytest.approx(two_proportion_z(160, 400, 240, 400)[1])
    with pytest.raises(ValueError, match="not paired"):
        paired_bootstrap_ci([True], [True, False])


def _rec(valid, correct, *, repair=None, final=None, iterations=0, timed_out=False):
    """One student's record as distill.students.formal_eval writes it."""
    rv, rc = repair if repair is not None else (valid, correct)
    fv, fc = final if final is not None else (valid, correct)
    return {"valid": valid, "correct": correct, "timed_out": False,
            "repair": {"changed": repair is not None, "valid": rv, "correct": rc, "timed_out": False},
            "initial_valid": valid, "final_valid": fv, "final_correct": fc, "final_timed_out": timed_out,
            "iterations": iterations}


def _preds():
    s1 = [_rec(False, False, repair=(True, False), final=(True, True), iterations=1),
          _rec(True, False),
          _rec(False, False, final=(False, False), iterations=2, timed_out=True),
          _rec(True, True)]
    s2 = [_rec(False, False, iterations=1) for _ in range(4)]
    picks = [2, 1, 1, 1]
    return [{"id": f"r{i}", "s1": a, "s2": b, "ensemble": {"pick": k}} for i, (a, b, k) in enumerate(zip(s1, s2, picks))]


def test_table_rows_and_columns_from_known_outcomes():
    from distill.students.eval_table import table_rows

    t = table_rows(_preds(), n_students=2, refine=2, refine_on="invalid", template_repair=True)
    assert list(t) == ["s1", "s2", "ensemble"]
    assert list(t["s1"]) == ["distilled", "template_repair", "refine"]
    d, tr, rf = t["s1"]["distilled"], t["s1"]["template_repair"], t["s1"]["refine"]
    assert (d["n"], d["valid"], d["correct"], d["valid_wrong"], d["repair_rate"], d["mean_iterations"], d["timeout"]) \
        == (4, 0.5, 0.25, 0.25, None, None, 0.0)
    assert (tr["valid"], tr["correct"], tr["valid_wrong"], tr["repair_rate"], tr["repaired"]) == (0.75, 0.25, 0.5, 0.5, [1, 2])
    assert (rf["valid"], rf["correct"], rf["valid_wrong"], rf["repair_rate"], rf["mean_iterations"], rf["timeout"]) \
        == (0.75, 0.5, 0.25, 0.5, 0.75, 0.25)
    assert rf["rounds"] == 2 and rf["oracle_feedback"] is False
    assert t["s2"]["refine"]["repair_rate"] == 0.0 and t["s2"]["refine"]["mean_iterations"] == 1.0
    e = t["ensemble"]["distilled"]  # item 0 follows student 2 (invalid), the rest student 1
    assert (e["valid"], e["correct"]) == (0.5, 0.25)
    assert t["ensemble"]["refine"]["correct"] == 0.25  # student 1's refined item 0 is not the ensemble's pick
    one = table_rows(_preds(), n_students=1)
    assert list(one) == ["s1"] and list(one["s1"]) == ["distilled"]
    plain = table_rows([{"id": "a", "s1": {"correct": True}}], n_students=1, first="base")
    assert plain["s1"]["base"]["correct"] == 1.0 and plain["s1"]["base"]["valid"] is None


def test_comparisons_against_base_console_text_and_png(tmp_path):
    import matplotlib.image

    from distill.students.eval_plot import plot_table
    from distill.students.eval_table import add_comparisons, format_table, merge_predictions, table_rows

    preds = _preds()
    base = [{"id": p["id"], "s1": _rec(False, False), "s2": _rec(False, False), "ensemble": {"pick": 1}} for p in preds]
    t = table_rows(preds, n_students=2, refine=2, refine_on="wrong", template_repair=True)
    bt = table_rows(base, n_students=2, first="base")
    t = {g: {"base": bt[g]["base"], **rows} for g, rows in t.items()}
    add_comparisons(t, base, preds)
    assert "vs_base" not in t["s1"]["base"]
    c = t["s1"]["refine"]["vs_base"]["correct"]
    assert c["diff"] == 0.5 and c["p"] == pytest.approx(two_proportion_z(0, 4, 2, 4)[1])
    assert c["ci95"][0] <= 0.5 <= c["ci95"][1] and t["s1"]["distilled"]["vs_base"]["valid"]["diff"] == 0.5
    text = format_table(t)
    assert "student 1 (n=4)" in text and "ensemble (n=4)" in text
    assert "distilled + refinement (K=2) [oracle feedback]" in text and "distilled + template repair" in text
    distilled = next(line for line in text.splitlines() if line.strip().startswith("distilled  "))
    assert distilled.split()[1:5] == ["50.0", "25.0", "25.0", "-"]
    with pytest.raises(ValueError, match="same items"):
        add_comparisons(t, base[::-1], preds)
    merged = merge_predictions(preds, base)
    assert merged[0]["base"]["s1"]["valid"] is False and "id" not in merged[0]["base"]
    png = plot_table(t, tmp_path / "table.png", title="smt")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h, w = matplotlib.image.imread(png).shape[:2]
    assert w > 2 * h  # three panels side by side
