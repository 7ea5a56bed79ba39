"""Verifier processes and output: solver text decoded with replacement, one time budget per response,
workers that die with their parent, and math-verify logs of bounded size (issue 12, items 15-17)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from distill.verify import score
from distill.verify.solvers import RESPONSE_SOLVER_BUDGET_S, SOLVER_TIMEOUT_S, run_asp

ROOT = Path(__file__).resolve().parents[1]
# clingo grounding of ~1e15 atoms: never finishes and ignores signals; only a kill stops it.
HANG = "```asp\nn(1..100000).\np(X,Y,Z) :- n(X), n(Y), n(Z).\nanswer(1).\n```\n"


def _python(code: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, **kw)


# ------------------------------------------------------------------ item 15: decoding and the budget
def test_non_ascii_asp_program_is_an_error_not_a_crash():
    # clingo cuts "é" (2 bytes in UTF-8) in half in its lexer error; a strict decode raised
    # UnicodeDecodeError out of distill.verify.score (and so out of `distill eval`).
    res = run_asp("café(1).\nanswer(X) :- café(X).")
    assert not res.ok and "lexer error" in res.error
    resp = "Let me encode it.\n```asp\nvalué(3).\nanswer(X) :- valué(X).\n```\nSo we get 3 apples."
    v = score("gsm8k", resp, {"gold_answer": "3"})
    assert v.pred == "3"  # the program failed; the prose's number is the fallback, as for any bad program


def test_many_slow_blocks_share_one_budget():
    # Five blocks that each run until killed (SOLVER_TIMEOUT_S = 3 s each) cost 15 s before; the whole
    # response now gets RESPONSE_SOLVER_BUDGET_S. The bound is behaviour, not a speed target: the
    # margin is generous (one more solver timeout).
    assert RESPONSE_SOLVER_BUDGET_S < 5 * SOLVER_TIMEOUT_S
    resp = "Try the program.\n" + HANG * 5 + "I could not finish."
    t = time.monotonic()
    v = score("gsm8k", resp, {"gold_answer": "1"})
    took = time.monotonic() - t
    assert v.correct is False
    assert took < RESPONSE_SOLVER_BUDGET_S + SOLVER_TIMEOUT_S, took


@pytest.mark.skipif(not Path("/usr/bin/dot").exists() and not Path("/usr/local/bin/dot").exists(),
                    reason="needs Graphviz 'dot'")
def test_dot_left_unchecked_by_a_spent_budget_fails_closed():
    from distill.verify import solvers

    spent = solvers.Budget(0.0)
    good = "The answer is 1.\n```dot\ndigraph { a -> b }\n```"
    assert solvers.structure_ok(good)
    assert not solvers.structure_ok(good, budget=spent)


# ------------------------------------------------------------------ item 16: workers die with their parent
def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            out.append(int(d.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_workers_die_when_the_parent_is_killed():
    parent = _python(f"""
        import json, sys
        from distill.verify import batch
        from distill.verify.batch import score_batch
        score_batch("gsm8k", [("The answer is 1.", {{"gold_answer": "1"}})] * 2, workers=2)
        print(json.dumps([w.proc.pid for w in batch._POOL.workers]), flush=True)
        score_batch("gsm8k", [({HANG!r}, {{"gold_answer": "1"}})] * 4, workers=2, timeout=300)
    """, stdout=subprocess.PIPE, text=True)
    try:
        workers = json.loads(parent.stdout.readline())
        assert len(workers) == 2
        # both workers busy in a clingo child (a second process in the worker's group)
        t = time.monotonic()
        while any(len(_group_members(w)) < 2 for w in workers) and time.monotonic() - t < 20:
            time.sleep(0.1)
        assert all(len(_group_members(w)) >= 2 for w in workers), [_group_members(w) for w in workers]
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        t = time.monotonic()
        while any(_group_members(w) for w in workers) and time.monotonic() - t < 3.0:
            time.sleep(0.05)
        left = {w: _group_members(w) for w in workers}
        assert not any(left.values()), f"still running after the parent died: {left}"
    finally:
        if parent.poll() is None:
            parent.kill()
        for w in workers if "workers" in locals() else []:
            for pid in _group_members(w):  # only processes of the groups this test started
                os.kill(pid, signal.SIGKILL)


def test_parent_thread_exit_does_not_kill_workers():
    # PR_SET_PDEATHSIG fires when the *thread* that started a worker exits: a pool created in a
    # worker thread must keep serving after that thread is gone.
    import threading

    from distill.verify import batch
    from distill.verify.batch import score_batch

    batch.shutdown()
    th = threading.Thread(target=score_batch, args=("gsm8k", [("The answer is 2.", {"gold_answer": "2"})]),
                          kwargs={"workers": 1})
    th.start()
    th.join()
    time.sleep(1.0)
    res = score_batch("gsm8k", [("The answer is 2.", {"gold_answer": "2"})] * 3, workers=1)
    assert res.errors == 0 and res.correct == 3
    batch.shutdown()


# ------------------------------------------------------------------ item 17: bounded logs
def test_math_verify_timeout_log_is_bounded():
    # In a fresh interpreter's main thread (math-verify's SIGALRM timeout): a 240 kB boxed answer.
    # It used to time out in math-verify's parser, which logged the whole input to stderr; now the
    # answer never reaches math-verify, and any record math-verify logs is cut short.
    proc = _python(r"""
        import logging
        from distill.verify import score
        from distill.verify.mathequiv import _mv
        big = r"\boxed{" + "+".join(["x^{2}"] * 40000) + "}"
        v = score("math", "Work. " + big, {"gold_answer": "1"})
        assert not v.correct
        _mv()  # math-verify loaded: its loggers carry the filter
        logging.getLogger("math_verify.parser").warning("Timeout during parsing: %s", "y" * 1_000_000)
        print("done")
    """, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert out.strip() == "done"
    assert "Timeout during parsing" in err and "more characters cut" in err
    assert len(err) < 2000, len(err)
