"""The routing probe (slow, runs in CI): does the router really learn?

Student 1 gets a 144-token left-truncating window, so the long ``tot`` paths lose their question
and the story they restate becomes unpredictable for it; student 2 sees everything. After
training, ``distill posrate --log_dir RUN --json`` must show >= 80% of ``tot`` paths routed to
student 2 in the last epoch, while the other styles stay mixed (each student still gets a real
share of them). Measured (400 train, 4 epochs, ~2 min): last epoch tot -> student 2 95.3%
(student 1 5.7%); the other styles 73-95% to student 1 and 57-72% to student 2.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_probe_window_really_cuts_tot_only(tmp_path, demo_students):
    """The probe's premise, checked on real tokenizers: short styles fit student 1's window, tot does not."""
    from distill.demo.pipeline import probe_config
    from distill.demo.synthetic import ArithConfig
    from distill.students.data import encode_path, question_text

    cfg = probe_config(outdir=str(tmp_path))
    arith = ArithConfig(n_train=60, n_test=5, distractors=cfg.arith.distractors, max_extra=cfg.arith.max_extra)
    rows, teacher, m1, m2, tok1, tok2 = demo_students(cfg, arith)
    w1 = cfg.student1.max_positions
    for row in rows:
        q = question_text("arith", row)
        for style in cfg.styles.split(","):
            resp = teacher.answer(row, style)
            e1 = encode_path(tok1, q, resp, w1)
            e2 = encode_path(tok2, q, resp, cfg.student2.max_positions)
            prompt_kept1 = sum(1 for l in e1["labels"] if l == -100)
            assert all(l != -100 for l in e2["labels"][-3:]) and e2["labels"][0] == -100  # s2: whole path
            if style == "tot":
                # The question is cut off (only the prompt's fixed tail may remain); tot itself
                # restates the story but never the final "How many ...?" sentence.
                asked = row["question"][row["question"].rfind("How many"):]
                assert asked not in tok1.decode(e1["input_ids"]), "tot must lose the question for student 1"
                assert prompt_kept1 <= 16 and len(e1["input_ids"]) == w1
            else:
                assert prompt_kept1 > 0 and len(e1["input_ids"]) <= w1, (style, len(e1["input_ids"]))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_router_sends_unlearnable_style_to_student2(tmp_path):
    out = tmp_path / "probe"
    proc = subprocess.run([sys.executable, "-m", "distill.cli", "demo", "--probe", "--outdir", str(out),
                           "--n_train", "400", "--n_test", "20", "--epochs", "4", "--no_plot"],
                          capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pr = subprocess.run([sys.executable, "-m", "distill.cli", "posrate", "--log_dir", str(out / "run"), "--json"],
                        capture_output=True, text=True)
    assert pr.returncode == 0, pr.stderr
    rates = json.loads(pr.stdout)
    last = rates["per_epoch"][str(max(int(e) for e in rates["per_epoch"]))]
    assert last["tot"]["student2"] >= 0.8, last
    for style in ("cot", "program", "knowledge", "fwd_bwd"):
        assert 0.1 <= last[style]["student1"] and 0.1 <= last[style]["student2"], (style, last[style])
