"""Benchmark: teacher-prompting throughput against a local server with fixed latency.

Target (issue 6): 400 requests at concurrency 64 against a server answering after 1 s must
reach >= 80 % of ideal throughput, ideal wall = ceil(400 / 64) x 1 s = 7 s (start-up
excluded: the clock runs from the first request sent to the last answer cached).

The server runs in its own process (tests/fake_openai_server.py) so its CPU does not share
our GIL; the client is the real pipeline: real ``openai.AsyncOpenAI``, durable cache, engine.
Also reports client CPU seconds per request, the number that caps throughput on 2 cores.

    .venv/bin/python bench/bench_prompt_concurrency.py [--requests 400 --concurrency 64 --latency 1]

Prints numbers and exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--n", type=int, default=4, help="paths per question (requests / n rows)")
    ap.add_argument("--target", type=float, default=0.80)
    args = ap.parse_args()

    from distill.data.tasks import get_task
    from distill.prompting.backends import get_backend
    from distill.prompting.pipeline import PromptSettings, Source, run_prompt
    from distill.prompting.retry import RetryPolicy

    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"),
                               "--latency", str(args.latency)], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        port = int(line.split()[1])
        with tempfile.TemporaryDirectory() as tmp:
            rows_n = math.ceil(args.requests / args.n)
            src_path = Path(tmp) / "gsm8k" / "test.jsonl"
            src_path.parent.mkdir(parents=True)
            rows = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": "42"} for i in range(rows_n)]
            src_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            settings = PromptSettings(model="bench", n=args.n, styles=("cot", "program", "knowledge", "tot"),
                                      concurrency=args.concurrency, request_timeout=30.0,
                                      retry=RetryPolicy(max_attempts=3, base_delay=0.1))
            backend = get_backend("openai", model="bench", base_url=f"http://127.0.0.1:{port}/v1",
                                  api_key="bench", request_timeout=30.0, concurrency=args.concurrency)
            c0, t0 = cpu_s(), time.perf_counter()
            report = run_prompt(backend, [Source(get_task("gsm8k"), src_path, rows)], settings, progress=False)
            wall, cpu = time.perf_counter() - t0, cpu_s() - c0
        stats = report.stats
        n_req = stats.jobs
        ideal = math.ceil(n_req / args.concurrency) * args.latency
        eff = ideal / stats.request_wall_s
        print(f"requests: {stats.requests} (paths {n_req}, failed {stats.failed}, retries {stats.retries}, "
              f"in-flight limit min {getattr(stats, 'min_limit', args.concurrency)})")
        print(f"concurrency {args.concurrency}, server latency {args.latency:g} s")
        print(f"request wall: {stats.request_wall_s:.2f} s  ideal: {ideal:.2f} s  efficiency: {eff:.1%} "
              f"(target >= {args.target:.0%})")
        print(f"total wall incl. planning + verification + writing: {wall:.2f} s")
        print(f"client CPU: {cpu:.2f} s total, {1000 * cpu / max(1, stats.requests):.2f} ms per request")
        ok = eff >= args.target and stats.failed == 0 and stats.requests == n_req
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    sys.exit(main())
