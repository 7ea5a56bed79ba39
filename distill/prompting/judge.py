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

Cost control is ``distill prompt``'s (:mod:`distill.prompting.cost`): token usage in the report and the
summary, the cost from ``--price-in/--price-out`` or the price table, and ``--max-spend`` stopping
the requests before the estimate would pass it (paths it kept from being judged are dropped, counted as
not asked; a rerun with a higher cap judges only those).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, DistillError
from distill.prompting.sources import SourceSelection
from distill.prompting.transport import TeacherOptions

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


@dataclass
class JudgeFile:
    task: Any
    path: Path  # the enriched file
    rows: list[dict[str, Any]]
    jobs: dict[int, list[tuple[int, Any]]] = field(default_factory=dict)  # row -> [(path index, Job)]


def find_enriched(selection: SourceSelection) -> list[tuple[Any, Path]]:
    """The ``*.enriched.jsonl`` files to judge: the one beside ``--input`` or every one under
    ``<root>/<task>/`` (train files only with ``include_train``)."""
    from distill.data.jsonl import enriched_path

    if selection.input is not None:
        pairs = selection.pairs()
        return [(t, p if p.name.endswith(".enriched.jsonl") else enriched_path(p)) for t, p in pairs]
    out = []
    for spec in selection.tasks():
        tdir = Path(selection.root) / spec.name
        if tdir.is_dir():
            for p in sorted(tdir.rglob("*.enriched.jsonl")):
                if selection.include_train or not ("train" in p.relative_to(tdir).parts[:-1]
                                                   or p.name.startswith("train.")):
                    out.append((spec, p))
    if not out:
        raise DistillError(f"no *.enriched.jsonl under {selection.root} for --dataset {selection.dataset}; "
                           "run `distill prompt` first")
    return out


@dataclass
class JudgeReport:
    """What a judge run did: request stats, verdict counts, the files written, failed requests."""

    stats: Any  # distill.prompting.engine.RunStats
    kept: int
    rejected: int
    unparsed: int
    failed: int
    failures: list[str]
    files: list[Path]  # the enriched files judged
    wall_s: float
    prices: Any = None  # distill.prompting.cost.Prices, or None (tokens only)
    budget: Any = None  # distill.prompting.cost.SpendCap of --max-spend, or None
    not_asked: int = 0  # paths the --max-spend cap kept from being judged (dropped)

    @property
    def cap_reached(self) -> bool:
        return self.budget is not None and self.budget.reached

    def as_dict(self) -> dict[str, Any]:
        return {**self.stats.as_dict(), "kept": self.kept, "rejected": self.rejected, "unparsed": self.unparsed,
                "failed_paths": self.failed, "not_asked_paths": self.not_asked, "wall_s": round(self.wall_s, 3),
                "usage": {"this_run": self.stats.paid.as_dict(self.prices),
                          "from_cache": self.stats.from_cache.as_dict(self.prices)},
                "prices": None if self.prices is None else self.prices.as_dict(),
                "max_spend": None if self.budget is None else self.budget.as_dict()}

    def format(self) -> str:
        from distill.prompting.stats import cost_lines

        s = self.stats
        lines = [f"judged {s.jobs} correct paths ({s.cached} from cache): kept {self.kept}, rejected {self.rejected}, "
                 f"no verdict {self.unparsed}, failed {self.failed}"
                 + (f", not asked {self.not_asked}" if self.not_asked else ""),
                 f"requests: {s.requests}  retries: {s.retries}  wall time: {round(self.wall_s, 3):.1f} s",
                 *cost_lines(s, self.prices, self.budget)]
        lines += [f"  {path} -> {judged_path(path).name}" for path in self.files]
        if self.failures:
            lines.append(f"FAILED judge requests ({len(self.failures)}; those paths are dropped, rerun to retry):")
            lines += [f"  {x}" for x in self.failures[:20]]
        if self.cap_reached:
            lines.append(self.budget.stop_line())
        return "\n".join(lines)


def run_judge(teacher: TeacherOptions, selection: SourceSelection, *, temperature: float = 0.0,
              max_tokens: int = 512, progress: bool = True, summary_json: str | Path | None = None,
              price_in: float | None = None, price_out: float | None = None, price_cached: float | None = None,
              max_spend: float | None = None) -> JudgeReport:
    """``distill judge``: ask the judge about every verified-correct path, write ``<stem>.judged.jsonl``.

    Flags (prices and ``max_spend`` as in ``distill prompt``) are checked and the backend built (a missing
    key fails here) before any file is read.
    """
    from distill.data.commit import check_writable, lock_sources
    from distill.data.jsonl import read_rows
    from distill.prompting.backend import Request
    from distill.prompting.cache import ResponseCache, cache_key
    from distill.prompting.cost import SpendCap, check_max_spend, resolve_prices
    from distill.prompting.engine import Job, run_jobs

    t0 = time.perf_counter()
    policy = teacher.retry_policy()
    selection.tasks()
    if teacher.concurrency < 1 or teacher.request_timeout <= 0:
        raise ConfigError("--concurrency must be >= 1 and --request-timeout > 0")
    model = teacher.model
    prices = resolve_prices(model, price_in, price_out, price_cached, teacher.backend)
    check_max_spend(max_spend, prices, model)
    budget = SpendCap(max_spend, prices) if max_spend is not None else None
    backend = teacher.make_backend()  # missing key -> one-line error before any work
    files: list[JudgeFile] = []
    caches: list[ResponseCache] = []
    jobs: list[Job] = []
    locks = contextlib.ExitStack()
    try:
        targets = find_enriched(selection)
        for _, path in targets:
            if not path.is_file():
                raise DistillError(f"{path}: no such enriched file; run `distill prompt` first")
        # the same per-source lock as `distill prompt` (which rewrites the enriched file judged here),
        # then every output checked writable: nothing is asked that could not be saved
        lock_sources(locks, [p for _, p in targets], purpose="judge")
        for _, path in targets:
            check_writable(judged_path(path))
            check_writable(_judge_cache_path(path))
        if summary_json:
            check_writable(Path(summary_json))
        for spec, path in targets:
            jf = JudgeFile(spec, path, read_rows(path, spec, enriched=True))
            cache = ResponseCache(_judge_cache_path(path))
            caches.append(cache)
            for r, row in enumerate(jf.rows):
                for i, (resp, ok) in enumerate(zip(row["responses"], row.get("correct_flags") or [])):
                    if not ok:
                        continue
                    prompt = judge_prompt(spec, row, resp)
                    key = cache_key(model=model, prompt=prompt, style="judge", sample_index=0,
                                    temperature=temperature, max_tokens=max_tokens, kind="judge")
                    req = Request(prompt=prompt, style="judge", row=row, task=spec.name, sample_index=0,
                                  temperature=temperature, max_tokens=max_tokens)
                    job = Job(key, req, cache, meta={"id": row["id"], "path": i, "model": model})
                    jf.jobs.setdefault(r, []).append((i, job))
                    jobs.append(job)
            files.append(jf)

        async def go():
            try:
                return await run_jobs(backend, jobs, concurrency=teacher.concurrency,
                                      request_timeout=teacher.request_timeout, policy=policy,
                                      progress=progress, desc=f"judge {model}", prices=prices, budget=budget)
            finally:
                close = getattr(backend, "aclose", None)
                if close is not None:
                    await close()

        stats = asyncio.run(go())
        return _write_judged(files, stats, summary_json, t0, prices, budget)
    finally:
        for c in caches:
            c.close()
        locks.close()


def _judge_cache_path(enriched: Path) -> Path:
    return enriched.with_name(enriched.name.replace(".enriched.jsonl", ".judge.cache.jsonl"))


def _write_judged(files: list[JudgeFile], stats, summary_json: str | Path | None, t0: float,
                  prices: Any = None, budget: Any = None) -> JudgeReport:
    """Keep the paths the judge accepted; write ``<stem>.judged.jsonl`` per file and the summary."""
    from distill.data.jsonl import atomic_write_jsonl, correct_only

    kept = rejected = unparsed = failed = not_asked = 0
    failures: list[str] = []
    for jf in files:
        out_rows = []
        for r, row in enumerate(jf.rows):
            keep_idx, verdicts = [], []
            for i, job in jf.jobs.get(r, []):
                if job.skipped:  # the --max-spend cap was reached before it was asked
                    not_asked += 1
                    continue
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
    report = JudgeReport(stats, kept, rejected, unparsed, failed, failures, [jf.path for jf in files],
                         time.perf_counter() - t0, prices, budget, not_asked)
    if summary_json:
        from distill.data.jsonl import atomic_write_text

        atomic_write_text(Path(summary_json), json.dumps(report.as_dict(), indent=2) + "\n")
    return report
