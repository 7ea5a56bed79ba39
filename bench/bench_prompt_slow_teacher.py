"""Benchmark: a slow local teacher that answers one request at a time (a CPU server).

The server (tests/fake_openai_server.py --serial) generates answers strictly one after another,
``--latency`` seconds each, and keeps generating requests whose client gave up. Asked with
``--concurrency 16`` and a time-out shorter than 16 answers, the fixed engine re-sends timed-out
requests into an ever longer queue; the adaptive engine (AIMD in-flight limit, doubled time-out for
a retried time-out) must finish every path.

Targets: every path answered; request wall <= ``--max-slowdown`` x the serial ideal
(paths x latency); answers generated <= ``--max-waste`` x paths. The fixed engine (adaptive off) is
run too, for reference (its numbers are printed, not judged).

    .venv/bin/python bench/bench_prompt_slow_teacher.py [--paths 40 --latency 0.25 --timeout 2]

Prints numbers and exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generated(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as resp:
        return int(json.loads(resp.read())["generated"])


def run_once(port: int, args, *, adaptive: bool, tmp: Path) -> tuple[int, int, float, str]:
    from distill.prompting.backend import Request
    from distill.prompting.backends import get_backend
    from distill.prompting.cache import ResponseCache
    from distill.prompting.engine import Job, run_jobs
    from distill.prompting.retry import RetryPolicy

    cache = ResponseCache(tmp / f"bench{int(adaptive)}.cache.jsonl")
    jobs = [Job(f"k{i}", Request(f"Question: {adaptive} {i}\n", "cot", {"id": str(i)}, "gsm8k", 0, 0.5, 64), cache)
            for i in range(args.paths)]
    backend = get_backend("openai", model="bench", base_url=f"http://127.0.0.1:{port}/v1", api_key="bench",
                          request_timeout=args.timeout, concurrency=args.concurrency)
    policy = RetryPolicy(max_attempts=6, base_delay=0.2, max_delay=2.0)

    async def go():
        try:
            return await asyncio.wait_for(run_jobs(backend, jobs, concurrency=args.concurrency,
                                                   request_timeout=args.timeout, policy=policy, progress=False,
                                                   adaptive=adaptive), args.bound)
        finally:
            await backend.aclose()

    g0, t0 = generated(port), time.perf_counter()
    try:
        stats = asyncio.run(go())
        note = f"requests {stats.requests}, time-outs {stats.timeouts}, in-flight limit min {stats.min_limit}"
    except TimeoutError:
        note = f"did not finish within {args.bound:g} s"
    wall = time.perf_counter() - t0
    cache.close()
    time.sleep(0.1)
    return sum(j.ok for j in jobs), generated(port) - g0, wall, note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--bound", type=float, default=120.0, help="give up on a run after this many seconds")
    ap.add_argument("--max-slowdown", type=float, default=2.5)
    ap.add_argument("--max-waste", type=float, default=2.0)
    args = ap.parse_args()

    ideal = args.paths * args.latency
    results = {}
    for adaptive in (True, False):
        server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--serial",
                                   "--latency", str(args.latency)], stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline().split()[1])
            with tempfile.TemporaryDirectory() as tmp:
                results[adaptive] = run_once(port, args, adaptive=adaptive, tmp=Path(tmp))
        finally:
            server.terminate()
            server.wait(5)
        ok, gen, wall, note = results[adaptive]
        print(f"{'adaptive' if adaptive else 'fixed   '}: {ok}/{args.paths} answered in {wall:.1f} s "
              f"(serial ideal {ideal:.1f} s), {gen} answers generated; {note}")
    ok, gen, wall, _ = results[True]
    good = ok == args.paths and wall <= args.max_slowdown * ideal and gen <= args.max_waste * args.paths
    print(f"targets: all answered, wall <= {args.max_slowdown:g} x ideal ({args.max_slowdown * ideal:.1f} s), "
          f"generated <= {args.max_waste:g} x paths ({args.max_waste * args.paths:.0f})")
    print("PASS" if good else "FAIL")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
