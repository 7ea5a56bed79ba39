"""Verification figures: answers/s of the batch verifier on real GSM8K and MATH answers (the shared
datasets' reference solutions, right and wrong), and formal verdicts/s with the real solvers.

The case builders are ``bench_verify.py``'s and ``bench_formal.py``'s; every verdict is checked against
the known answer so speed cannot come from wrong verdicts. The gated GSM8K / MATH rate is *cold*: it
includes starting the worker pool and importing math-verify. Target: >= 500/s (math), >= 50/s (each formal
language), 0 timeouts on real data (a timeout leaves the figure not met whatever the rate).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from suite_common import DATA, figure


def _bare(gold: str) -> str:
    return re.sub(r"^[a-zA-Z]\s*=\s*", "", gold.strip()).replace(" ", "")


def math_items(limit: int | None = None) -> tuple[list[tuple[str, dict]], list[bool]]:
    """Per MATH-500 test row: its reference solution (right), ``\\boxed{gold}`` (right), another row's
    gold answer (wrong; not judged when the two golds are the same up to a leading ``x =``: ``x=5`` and
    ``5`` are equal answers)."""
    rows = [json.loads(line) for line in (DATA / "math" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = rows[:limit] if limit else rows
    items, expect = [], []
    for i, r in enumerate(rows):
        other = rows[(i + 1) % len(rows)]["gold_answer"]
        other_ok = None if _bare(other) == _bare(r["gold_answer"]) else False
        for resp, ok in ((r["solution"], True), (f"The answer is $\\boxed{{{r['gold_answer']}}}$.", True),
                         (f"The answer is $\\boxed{{{other}}}$.", other_ok)):
            items.append((resp, r))
            expect.append(ok)
    return items, expect


def _score(task: str, items, expect, workers: int) -> dict[str, Any]:
    from distill.verify.batch import score_batch

    t = time.perf_counter()
    res = score_batch(task, items, workers=workers, timeout=5.0)
    secs = time.perf_counter() - t
    wrong = sum(e is not None and v.correct != e for v, e in zip(res.verdicts, expect))
    return {"answers": len(items), "seconds": round(secs, 3), "per_s": round(len(items) / secs, 1),
            "timeouts": res.timeouts, "errors": res.errors, "timeout_share": res.timeouts / max(1, len(items)),
            "wrong_verdicts": wrong}


def profile_score(task: str, items, top: int = 10) -> list[dict[str, Any]]:
    """cProfile's top functions (own time) of scoring ``items`` in this process, one by one."""
    import cProfile
    import pstats
    from pathlib import Path

    from distill.verify.core import score

    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.runcall(lambda: [score(task, r, row) for r, row in items])
    wall = time.perf_counter() - t
    rows = sorted(pstats.Stats(prof).stats.items(), key=lambda kv: -kv[1][2])[:top]
    return [{"items": len(items), "profiled_wall_s": round(wall, 3)}] + [
        {"function": f"{Path(f).name}:{line}:{fn}", "own_s": round(tt, 3), "cum_s": round(ct, 3), "calls": nc}
        for (f, line, fn), (_, nc, tt, ct, _) in rows]


def math_figures(quick: bool, workers: int = 2) -> list[dict[str, Any]]:
    from bench_verify import gsm8k_items

    from distill.verify.batch import shutdown

    shutdown()  # cold: the pool starts inside the timed call
    g_items, g_expect = gsm8k_items(DATA / "gsm8k" / "test.jsonl")
    if quick:
        g_items, g_expect = g_items[:1500], g_expect[:1500]
    gsm = _score("gsm8k", g_items, g_expect, workers)
    gsm_warm = _score("gsm8k", g_items, g_expect, workers)
    m_items, m_expect = math_items(200 if quick else None)
    mth = _score("math", m_items, m_expect, workers)
    mth_warm = _score("math", m_items, m_expect, workers)
    shutdown()
    out = []
    for name, res, warm, src in (("verify_per_s_gsm8k", gsm, gsm_warm, "gsm8k test: solution boxed / as is / "
                                   "answer+1"), ("verify_per_s_math", mth, mth_warm, "MATH-500 test: reference solution / "
                                                "boxed gold / another row's gold")):
        f = figure(name, res["per_s"], 500.0, ">=", unit="answers/s (cold pool)",
                   inputs={"answers": res["answers"], "workers": workers, "timeout_s": 5.0, "source": src},
                   **res, **({"warm_per_s": warm["per_s"]} if warm else {}))
        f["met"] = bool(f["met"] and res["timeouts"] == 0)
        if not f["met"]:  # where one process's time goes (the workers run the same distill.verify.core.score)
            items = g_items if name.endswith("gsm8k") else m_items
            f["detail"]["profile_top_in_process"] = profile_score(name.rsplit("_", 1)[1], items[:150])
        out.append(f)
    return out


def formal_figure(quick: bool, workers: int = 2) -> dict[str, Any]:
    """The slowest language's verdicts/s (dot: distinct references; smt, asp: the typical mix)."""
    import bench_formal as bf

    from distill.verify.formal import asp, dot

    per: dict[str, Any] = {}
    cases = {"dot": bf.dot_cases(25 if quick else 50, 1, seed=1), "smt": bf.smt_cases(), "asp": bf.asp_cases()}
    for lang, cs in cases.items():
        dot._ref_cache.clear()
        asp._REF_CACHE.clear()
        secs, wrong, timeouts = bf._run(lang, cs, workers)
        per[lang] = {"verdicts": len(cs), "seconds": round(secs, 3), "per_s": round(len(cs) / secs, 1),
                     "wrong_verdicts": len(wrong), "timeouts": timeouts, "timeout_share": timeouts / len(cs)}
    slowest = min(per, key=lambda k: per[k]["per_s"])
    f = figure("verify_per_s_formal", per[slowest]["per_s"], 50.0, ">=", unit="verdicts/s (slowest language)",
               inputs={"workers": workers, "cases": {k: v["verdicts"] for k, v in per.items()},
                       "source": "bench/bench_formal.py case builders (dot seed 1; smt; asp seed 0)"},
               slowest=slowest, per_language=per)
    f["met"] = bool(f["met"] and all(v["timeouts"] == 0 and v["wrong_verdicts"] == 0 for v in per.values()))
    return f
