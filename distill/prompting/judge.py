"""``distill judge``: the second filter. A judge model reads each *verified-correct* path and
says whether its reasoning is sound; kept paths go to ``<stem>.judged.jsonl``.

Why: answer matching keeps paths that reach the right answer by a wrong argument (a lucky
guess, cancelling errors). Training on those teaches the students to bluff. The judged file
has the ``*.correct.jsonl`` schema (``id``, ``gold_answer``, parallel path lists, ``path_idx``
into the enriched lists) plus ``judge_responses``, so training can select it instead of the
correct-only file. Same backends, concurrency, retries and durable cache
(``<stem>.judge.cache.jsonl``) as ``distill prompt``.

A path is kept only if the judge's final line says ``Verdict: SOUND``; an unparseable
verdict or a judge request that failed after all retries drops the path and is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.prompting.cli import add_transport_arguments, make_backend, retry_policy

JUDGE_TEMPLATE = """You are checking a worked solution for errors in its reasoning.

{core}

Reference answer: {gold}

Proposed solution:
<<<
{response}
>>>

The final answer matches the reference. Judge only the reasoning: is every step valid and does the
answer follow from the steps (not from a guess, a wrong formula, or errors that cancel out)?
Give a one-paragraph justification, then a final line that is exactly "Verdict: SOUND" or "Verdict: UNSOUND"."""

_VERDICT = re.compile(r"verdict\W*(sound|unsound)\b", re.IGNORECASE)


def parse_verdict(text: str) -> bool | None:
    """True (sound), False (unsound) or None (no verdict line) from the judge's text; last one wins."""
    found = _VERDICT.findall(text or "")
    if not found:
        return None
    return found[-1].lower() == "sound"


def judge_prompt(task, row: dict[str, Any], response: str) -> str:
    from distill.prompting.prompts import core_prompt

    return (JUDGE_TEMPLATE.replace("{core}", core_prompt(task, row)).replace("{gold}", str(row["gold_answer"]))
            .replace("{response}", response))


def judged_path(enriched: str | Path) -> Path:
    from distill.data.jsonl import stem_of

    p = Path(enriched)
    return p.with_name(f"{stem_of(p)}.judged.jsonl")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_transport_arguments(parser, default_model="gpt-4o-mini")
    parser.add_argument("--max-tokens", type=int, default=512, help="max judge tokens (default 512)")
    parser.add_argument("--temperature", type=float, default=0.0, help="judge temperature (default 0)")
    parser.epilog = ("Reads <stem>.enriched.jsonl under <root>/<task>/ (or --input); writes <stem>.judged.jsonl. "
                     "Example: distill judge --root ./data --dataset gsm8k --model gpt-4o")


@dataclass
class JudgeFile:
    task: Any
    path: Path  # the enriched file
    rows: list[dict[str, Any]]
    jobs: dict[int, list[tuple[int, Any]]] = field(default_factory=dict)  # row -> [(path index, Job)]


def find_enriched(args: argparse.Namespace) -> list[tuple[Any, Path]]:
    from distill.data.jsonl import enriched_path
    from distill.errors import DistillError
    from distill.prompting.cli import source_pairs

    if args.input is not None:
        pairs = source_pairs(args)
        return [(t, p if p.name.endswith(".enriched.jsonl") else enriched_path(p)) for t, p in pairs]
    from distill.prompting.pipeline import resolve_datasets

    out = []
    for spec in resolve_datasets(args.dataset):
        tdir = Path(args.root) / spec.name
        if tdir.is_dir():
            for p in sorted(tdir.rglob("*.enriched.jsonl")):
                if args.include_train or not ("train" in p.relative_to(tdir).parts[:-1] or p.name.startswith("train.")):
                    out.append((spec, p))
    if not out:
        raise DistillError(f"no *.enriched.jsonl under {args.root} for --dataset {args.dataset}; "
                           "run `distill prompt` first")
    return out


def run(args: argparse.Namespace) -> int:
    from distill.data.jsonl import atomic_write_jsonl, correct_only, read_rows
    from distill.prompting.backend import Request
    from distill.prompting.cache import ResponseCache, cache_key
    from distill.prompting.engine import Job, run_jobs
    from distill.prompting.pipeline import resolve_datasets

    t0 = time.perf_counter()
    policy = retry_policy(args)
    resolve_datasets(args.dataset)
    if args.concurrency < 1 or args.request_timeout <= 0:
        from distill.errors import ConfigError

        raise ConfigError("--concurrency must be >= 1 and --request-timeout > 0")
    backend = make_backend(args)  # missing key -> one-line error before any work
    files: list[JudgeFile] = []
    caches: list[ResponseCache] = []
    jobs: list[Job] = []
    try:
        for spec, path in find_enriched(args):
            if not path.is_file():
                from distill.errors import DistillError

                raise DistillError(f"{path}: no such enriched file; run `distill prompt` first")
            jf = JudgeFile(spec, path, read_rows(path, spec, enriched=True))
            cache = ResponseCache(path.with_name(path.name.replace(".enriched.jsonl", ".judge.cache.jsonl")))
            caches.append(cache)
            for r, row in enumerate(jf.rows):
                for i, (resp, ok) in enumerate(zip(row["responses"], row.get("correct_flags") or [])):
                    if not ok:
                        continue
                    prompt = judge_prompt(spec, row, resp)
                    key = cache_key(model=args.model, prompt=prompt, style="judge", sample_index=0,
                                    temperature=args.temperature, max_tokens=args.max_tokens, kind="judge")
                    req = Request(prompt=prompt, style="judge", row=row, task=spec.name, sample_index=0,
                                  temperature=args.temperature, max_tokens=args.max_tokens)
                    job = Job(key, req, cache, meta={"id": row["id"], "path": i, "model": args.model})
                    jf.jobs.setdefault(r, []).append((i, job))
                    jobs.append(job)
            files.append(jf)

        async def go():
            try:
                return await run_jobs(backend, jobs, concurrency=args.concurrency,
                                      request_timeout=args.request_timeout, policy=policy,
                                      progress=not args.no_progress, desc=f"judge {args.model}")
            finally:
                close = getattr(backend, "aclose", None)
                if close is not None:
                    await close()

        stats = asyncio.run(go())
    finally:
        for c in caches:
            c.close()

    kept = rejected = unparsed = failed = 0
    failures: list[str] = []
    for jf in files:
        out_rows = []
        for r, row in enumerate(jf.rows):
            keep_idx, verdicts = [], []
            for i, job in jf.jobs.get(r, []):
                if not job.ok:
                    failed += 1
                    failures.append(f"{row['id']}#{i}: {job.error}")
                    continue
                v = parse_verdict(job.completion.text)
                if v is None:
                    unparsed += 1
                elif v:
                    kept += 1
                    keep_idx.append(i)
                    verdicts.append(job.completion.text)
                else:
                    rejected += 1
            flags = [i in keep_idx for i in range(len(row["responses"]))]
            out = correct_only({**row, "correct_flags": flags})
            out["judge_responses"] = verdicts
            out_rows.append(out)
        atomic_write_jsonl(judged_path(jf.path), out_rows)
    summary = {**stats.as_dict(), "kept": kept, "rejected": rejected, "unparsed": unparsed, "failed_paths": failed,
               "wall_s": round(time.perf_counter() - t0, 3)}
    print(f"judged {stats.jobs} correct paths ({stats.cached} from cache): kept {kept}, rejected {rejected}, "
          f"no verdict {unparsed}, failed {failed}")
    print(f"requests: {stats.requests}  retries: {stats.retries}  tokens: prompt {stats.prompt_tokens}, "
          f"completion {stats.completion_tokens}  wall time: {summary['wall_s']:.1f} s")
    for jf in files:
        print(f"  {jf.path} -> {judged_path(jf.path).name}")
    if failures:
        print(f"FAILED judge requests ({len(failures)}; those paths are dropped, rerun to retry):")
        for x in failures[:20]:
            print(f"  {x}")
    if args.summary_json:
        from distill.data.jsonl import atomic_write_text

        atomic_write_text(args.summary_json, json.dumps(summary, indent=2) + "\n")
    return 1 if failed else 0
