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
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--n", type=int, default=4, help="paths per question (requests / n rows)")
    ap.add_argument("--target", type=float, default=0.80)
    args = ap.parse_args()

    from suite_prompt import run_pipeline, teacher_server  # the suite's prompting figures share this code

    with teacher_server(args.latency) as port:
        st = run_pipeline(port, args.requests, args.concurrency, args.n)
    n_req = st["paths"]
    ideal = math.ceil(n_req / args.concurrency) * args.latency
    eff = ideal / st["request_wall_s"]
    print(f"requests: {st['requests']} (paths {n_req}, failed {st['failed']}, retries {st['retries']})")
    print(f"concurrency {args.concurrency}, server latency {args.latency:g} s")
    print(f"request wall: {st['request_wall_s']:.2f} s  ideal: {ideal:.2f} s  efficiency: {eff:.1%} "
          f"(target >= {args.target:.0%})")
    print(f"total wall incl. planning + verification + writing: {st['total_wall_s']:.2f} s")
    print(f"client CPU: {st['client_cpu_s']:.2f} s total, {st['client_cpu_ms_per_request']:.2f} ms per request")
    ok = eff >= args.target and st["failed"] == 0 and st["requests"] == n_req
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
