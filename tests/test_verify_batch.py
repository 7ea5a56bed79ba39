"""score_batch: order, agreement with score(), hard per-item timeout, recovery from dead workers."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from distill.verify import NA, Verdict, score
from distill.verify import batch
from distill.verify.batch import score_batch
from distill.verify.mathequiv import MV_TIMEOUT_S

# clingo grounding of ~1e15 atoms: never finishes and ignores signals; only a kill stops it.
HANG = "```asp\nn(1..100000).\np(X,Y,Z) :- n(X), n(Y), n(Z).\nanswer(1).\n```"
# SymPy tries to evaluate this power tower (math-verify's own alarm would stop it only after 2 s).
LATEX_HANG = r"The answer is \boxed{9^{9^{9^{9}}}}."


def _items(n: int) -> list[tuple[str, dict]]:
    out = []
    for i in range(n):
        gold = str(i * 3)
        resp = f"We add things up. The answer is \\boxed{{{gold if i % 3 else i * 3 + 1}}}."
        out.append((resp, {"gold_answer": gold, "id": f"r{i}", "question": "big field " * 50}))
    return out


def test_matches_score_and_keeps_order():
    items = _items(60) + [(r"\boxed{\frac{1}{2}}", {"gold_answer": "0.5"}), (r"\boxed{(3,2)}", {"gold_answer": "(1,2)"})]
    res = score_batch("gsm8k", items, workers=2)
    assert res.timeouts == 0 and res.errors == 0
    assert res.verdicts == [score("gsm8k", r, row) for r, row in items]
    assert res.correct == 40 + 1
    assert score_batch("gsm8k", [], workers=2).verdicts == []


def test_hung_item_is_killed_and_counted():
    items = _items(6)
    items.insert(2, (HANG, {"gold_answer": "1"}))
    res = score_batch("gsm8k", items, workers=2, timeout=1.0)
    # The clingo program never finishes grounding; the worker's own clingo limit (3 s) would answer
    # N/A without a timeout. The 1 s hard deadline kills the worker first: exactly one timeout.
    assert res.timeouts == 1 and res.errors == 0
    assert res.verdicts[2] == Verdict(NA, False)
    others = [v for i, v in enumerate(res.verdicts) if i != 2]
    assert others == [score("gsm8k", r, row) for i, (r, row) in enumerate(items) if i != 2]
    # SymPy spins on the LaTeX tower until math-verify's own SIGALRM limit answers False after
    # MV_TIMEOUT_S (2 s). The design's guarantee: the hard per-item deadline fires first, so the item
    # is killed and counted as a timeout, never scored by math-verify. Alone in its batch, so no other
    # kill (whose worker replacement blocks the parent) can delay the deadline check.
    assert 1.0 < MV_TIMEOUT_S
    tower = score_batch("gsm8k", [(LATEX_HANG, {"gold_answer": "1"})], workers=2, timeout=1.0)
    assert tower.timeouts == 1 and tower.errors == 0 and tower.verdicts == [Verdict(NA, False)]
    # (wall-clock of a hung batch: bench/bench_verify_timeout.py)
    # the pool recovered: a second call works with the replacement worker
    again = score_batch("gsm8k", _items(5), workers=2, timeout=1.0)
    assert again.timeouts == 0 and [v.correct for v in again.verdicts] == [False, True, True, False, True]


def test_dead_worker_costs_one_item():
    score_batch("gsm8k", _items(2), workers=1)  # warm a 1-worker pool
    pid = batch._POOL.workers[0].proc.pid
    items = [(HANG, {"gold_answer": "1"})] + _items(4)
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    try:
        res = score_batch("gsm8k", items, workers=1, timeout=30.0)
    finally:
        killer.cancel()
    assert res.errors == 1 and res.timeouts == 0
    assert res.verdicts[0].correct is False
    assert [v.correct for v in res.verdicts[1:]] == [False, True, True, False]
    assert batch._POOL.workers[0].proc.pid != pid


def test_unknown_task_fails_in_caller():
    from distill.data.tasks import UnknownTaskError

    with pytest.raises(UnknownTaskError):
        score_batch("nope", [("1", {"gold_answer": "1"})])
