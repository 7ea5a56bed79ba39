"""``distill prompt`` as a library: find sources, plan paths, ask the teacher, verify, write.

:func:`run_prompting` is the whole command; its pieces are usable on their own. They live in
their own modules and are re-exported here: :mod:`distill.prompting.planning`
(settings, sources, jobs), :mod:`distill.prompting.stages` (preflight and output: locks, writable
checks, verification, enriched/correct files) and :mod:`distill.prompting.summary` (the report).

Paths per question: ``n`` paths with the styles cycled in the given order (path ``i``
uses ``styles[i % len(styles)]`` and sample index ``i``), so ``--n 6`` with the six
default styles asks each style once and ``--n 12`` twice. Each path's cache key is
(model, prompt, style, sample index, temperature, max_tokens): raising ``--n`` later
re-uses every answer already paid for.

Cost control (:mod:`distill.prompting.cost`): every answer's token usage is in the cache and the
report; with prices the report has the cost, and ``max_spend`` stops sending before the estimate
would pass it. ``resample_unsolved`` rounds (:mod:`distill.prompting.resample`) ask the questions with
no verified path again, in the same backend session and under the same cap. ``repair_rounds``
(formal tasks, :mod:`distill.prompting.repair`) sends each rejected program back with the solver's error,
after the first pass and after each resampling round.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

from distill.data.jsonl import atomic_write_text
from distill.errors import ConfigError
from distill.prompting.backend import Backend
from distill.prompting.cost import SpendCap, resolve_prices
from distill.prompting.engine import Job, RunStats, run_jobs
from distill.prompting.planning import PromptSettings, Source, choose_styles, load_sources, plan
from distill.prompting.repair import RepairRound, check_repair_tasks, run_repairs
from distill.prompting.resample import RoundResult, count_round, round_jobs, verify_new
from distill.prompting.sources import SourceSelection
from distill.prompting.styles import parse_styles
from distill.prompting.stages import FileReport, finalize, journal_path, prepare_outputs, verify_paths
from distill.prompting.summary import TRUNCATION_HINT, PromptReport
from distill.prompting.transport import TeacherOptions

__all__ = [
    "TRUNCATION_HINT", "FileReport", "PromptReport", "PromptSettings", "Source", "choose_styles", "finalize",
    "journal_path", "load_sources", "plan", "prepare_outputs", "run_prompt", "run_prompting", "verify_paths",
]


async def _generate(backend: Backend, jobs: list[Job], settings: PromptSettings, progress: bool,
                    sources: list[Source] | None = None, budget: SpendCap | None = None,
                    rounds: list[RoundResult] | None = None,
                    repairs: dict[int, RepairRound] | None = None) -> RunStats:
    """The first pass, then the resampling rounds (verifying between them); ``rounds`` gets their results.
    With ``repair_rounds``, rejected programs are sent back after each pass (``repairs`` gets the counts)."""
    def ask(batch: list[Job], desc: str):
        return run_jobs(backend, batch, concurrency=settings.concurrency, request_timeout=settings.request_timeout,
                        policy=settings.retry, progress=progress, desc=desc, prices=settings.prices, budget=budget)

    async def repair(stats: RunStats) -> None:
        if settings.repair_rounds:
            got = await run_repairs(sources or [], settings, ask, budget, repairs if repairs is not None else {})
            if got is not None:
                stats.merge(got)

    try:
        stats = await ask(jobs, f"teacher {settings.model}")
        await repair(stats)
        for rnd in range(1, settings.resample_unsolved + 1):
            if budget is not None and budget.reached:
                break
            verify_new(sources or [])  # (blocking: nothing is in flight between rounds)
            batch, groups = round_jobs(sources or [], settings, rnd)
            if not batch:
                break
            stats.merge(await ask(batch, f"resample {rnd}/{settings.resample_unsolved} {settings.model}"))
            result = RoundResult(rnd, len(groups), len(batch))
            verify_new(sources or [])
            await repair(stats)
            count_round(result, groups)
            if rounds is not None:
                rounds.append(result)
        return stats
    finally:
        close = getattr(backend, "aclose", None)
        if close is not None:
            await close()


def run_prompt(backend: Backend, sources: list[Source], settings: PromptSettings, *,
               progress: bool = True, summary_json: str | Path | None = None) -> PromptReport:
    """Lock and check the outputs, then ask, cache, verify and write for every source. The backend
    is closed afterwards."""
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            check_repair_tasks([s.task for s in sources], settings.repair_rounds)
            notes = prepare_outputs(stack, sources, summary_json, repairs=settings.repair_rounds > 0)
            jobs = plan(sources, settings)
            for src in sources:
                src.cache.open_for_append()
        except BaseException:
            for src in sources:
                if src.cache is not None:
                    src.cache.close()
            close = getattr(backend, "aclose", None)
            if close is not None:
                asyncio.run(close())
            raise
        budget = SpendCap(settings.max_spend, settings.prices) if settings.max_spend is not None else None
        rounds: list[RoundResult] = []
        repairs: dict[int, RepairRound] = {}
        try:
            stats = asyncio.run(_generate(backend, jobs, settings, progress, sources, budget, rounds, repairs))
        finally:
            for src in sources:
                if src.cache is not None:
                    src.cache.close()
        files = [finalize(src) for src in sources]
        report = PromptReport(stats, files, time.perf_counter() - t0, notes, settings.prices, budget, rounds,
                              [repairs[k] for k in sorted(repairs)])
        if summary_json:
            atomic_write_text(Path(summary_json), json.dumps(report.as_dict(), indent=2) + "\n")
    return report


def reference_defaults(backend: str, n: int | None, styles: str | None,
                       styles_file: str | Path | None) -> tuple[int, str | None]:
    """``--backend reference`` answers one ``reference`` path per question: it picks ``--styles reference
    --n 1`` itself when neither is given; other explicit values are a one-line error before anything is
    read. Other backends: ``n`` defaults to 6."""
    if backend != "reference":
        return (6 if n is None else n), styles
    from distill.prompting.backends.reference import REFERENCE_STYLE

    hint = f"run it with --styles {REFERENCE_STYLE} --n 1 (or neither: they are the default for this backend)"
    if n is not None and n != 1:
        raise ConfigError(f"--backend reference has one solution per question, not --n {n}; {hint}")
    chosen = styles if styles is not None else (None if styles_file else REFERENCE_STYLE)
    names = [s.name for s in parse_styles(chosen)] if chosen is not None else None
    if names != [REFERENCE_STYLE]:
        other = ",".join(names) if names else f"--styles-file {styles_file}"
        raise ConfigError(f"--backend reference answers only style {REFERENCE_STYLE!r} (the dataset's own "
                          f"solution), not {other}; {hint}")
    return 1, chosen


def run_prompting(teacher: TeacherOptions, selection: SourceSelection, *, n: int | None = None,
                  styles: str | None = None,
                  styles_file: str | Path | None = None, temperature: float = 0.7, max_tokens: int = 1024,
                  progress: bool = True, summary_json: str | Path | None = None,
                  price_in: float | None = None, price_out: float | None = None, price_cached: float | None = None,
                  max_spend: float | None = None, resample_unsolved: int = 0,
                  resample_styles: str | None = None, repair_rounds: int = 0) -> PromptReport:
    """``distill prompt``: validate everything, build the backend, read every source, then ask.

    Order matters: flag errors come before the backend is built (so a missing API key is not
    reported for a typo), and the backend before any file is read; a bad source line, a source
    another run holds, or an output that cannot be written (read-only, full disk) fails before any
    request is paid for (:func:`prepare_outputs`). ``summary_json`` also gets :meth:`PromptReport.as_dict`.
    ``n`` defaults to 6 paths (:func:`reference_defaults`: one ``reference`` path with ``--backend reference``).
    Prices come from ``price_in``/``price_out`` (``price_cached``) or the price table; ``max_spend``
    without a known price is refused here, before anything is sent, and so is ``repair_rounds`` on a task
    that is not formal.
    """
    n, styles = reference_defaults(teacher.backend, n, styles, styles_file)
    settings = PromptSettings(model=teacher.model, n=n, styles=choose_styles(styles, styles_file),
                              temperature=temperature, max_tokens=max_tokens, concurrency=teacher.concurrency,
                              request_timeout=teacher.request_timeout, retry=teacher.retry_policy(),
                              prices=resolve_prices(teacher.model, price_in, price_out, price_cached, teacher.backend),
                              max_spend=max_spend, resample_unsolved=resample_unsolved,
                              resample_styles=None if resample_styles is None else tuple(
                                  s.name for s in parse_styles(resample_styles)),
                              repair_rounds=repair_rounds)
    check_repair_tasks(selection.tasks(), repair_rounds)
    backend = teacher.make_backend()
    try:
        sources = load_sources(selection.pairs())
    except BaseException:
        close = getattr(backend, "aclose", None)
        if close is not None:
            asyncio.run(close())
        raise
    return run_prompt(backend, sources, settings, progress=progress, summary_json=summary_json)
