"""``distill prompt`` as a library: find sources, plan paths, ask the teacher, verify, write.

:func:`run_prompting` is the whole command; the pieces below it are usable on their own.

Paths per question: ``n`` paths with the styles cycled in the given order (path ``i``
uses ``styles[i % len(styles)]`` and sample index ``i``), so ``--n 6`` with the six
default styles asks each style once and ``--n 12`` twice. Each path's cache key is
(model, prompt, style, sample index, temperature, max_tokens): raising ``--n`` later
re-uses every answer already paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.commit import (
    ancestors, check_writable, commit, discard, lock_sources, recover, remove_stale_temps,
)
from distill.data.jsonl import (
    atomic_write_text, correct_only, correct_path, enriched_path, output_error, read_rows, stage_jsonl, stem_of,
)
from distill.data.tasks import TaskSpec, is_formal
from distill.errors import ConfigError
from distill.prompting.backend import Backend, Request
from distill.prompting.cache import ResponseCache, cache_key
from distill.prompting.engine import Job, RunStats, run_jobs
from distill.prompting.prompts import build_prompt
from distill.prompting.retry import RetryPolicy
from distill.prompting.sources import SourceSelection
from distill.prompting.styles import DEFAULT_STYLES, Style, get_style, load_styles_file, parse_styles
from distill.prompting.transport import TeacherOptions
from distill.verify.types import NA, Verdict


@dataclass
class PromptSettings:
    """Generation and transport settings of one ``distill prompt`` run."""

    model: str
    n: int = 6
    styles: tuple[str, ...] = DEFAULT_STYLES
    temperature: float = 0.7
    max_tokens: int = 1024
    concurrency: int = 16
    request_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("--model must name the teacher model")
        if self.n < 1:
            raise ConfigError(f"--n must be >= 1 paths per question (got {self.n})")
        if not self.styles:
            raise ConfigError("--styles must list at least one style")
        for s in self.styles:
            get_style(s)  # raises with the valid names
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1 (got {self.concurrency})")
        if self.request_timeout <= 0:
            raise ConfigError(f"--request-timeout must be > 0 seconds (got {self.request_timeout})")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"--temperature must be in [0, 2] (got {self.temperature})")
        if self.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be >= 1 (got {self.max_tokens})")

    def style_objs(self) -> list[Style]:
        return [get_style(s) for s in self.styles]


@dataclass
class Source:
    """One source file, its rows and (once planned) one job list per row."""

    task: TaskSpec
    path: Path
    rows: list[dict[str, Any]]
    cache: ResponseCache | None = None
    jobs: list[list[Job]] = field(default_factory=list)

    @property
    def cache_path(self) -> Path:
        return self.path.with_name(f"{stem_of(self.path)}.cache.jsonl")


def load_sources(pairs: list[tuple[TaskSpec, Path]]) -> list[Source]:
    """Read and validate every file first, so a bad line fails before any request is paid for."""
    return [Source(spec, Path(p), read_rows(p, spec)) for spec, p in pairs]


def plan(sources: list[Source], settings: PromptSettings) -> list[Job]:
    """Build every path's request and cache key; open each file's cache."""
    styles = settings.style_objs()
    all_jobs: list[Job] = []
    for src in sources:
        src.cache = ResponseCache(src.cache_path)
        src.jobs = []
        for row in src.rows:
            row_jobs = []
            for i in range(settings.n):
                style = styles[i % len(styles)]
                prompt = build_prompt(src.task, row, style)
                key = cache_key(model=settings.model, prompt=prompt, style=style.name, sample_index=i,
                                temperature=settings.temperature, max_tokens=settings.max_tokens)
                req = Request(prompt=prompt, style=style.name, row=row, task=src.task.name, sample_index=i,
                              temperature=settings.temperature, max_tokens=settings.max_tokens)
                row_jobs.append(Job(key, req, src.cache, meta={"id": row["id"], "style": style.name,
                                                               "sample_index": i, "model": settings.model}))
            src.jobs.append(row_jobs)
            all_jobs.extend(row_jobs)
    return all_jobs


def verify_paths(task: str, items: list[tuple[str, dict[str, Any]]]) -> tuple[list[Verdict], int]:
    """Score ``(response, row)`` pairs with the project's verifiers (worker processes, hard timeout).
    Returns the verdicts in order and how many timed out (hard kills plus formal solvers' own limits)."""
    if not items:
        return [], 0
    from distill.verify.batch import score_batch

    result = score_batch(task, items)
    return result.verdicts, result.timeouts + result.solver_timeouts


@dataclass
class FileReport:
    path: Path
    rows: int
    paths: int
    failed: list[str]  # "id#i (style): error"
    correct_by_style: Counter
    total_by_style: Counter
    enriched: Path
    correct: Path
    kept: list[str] = field(default_factory=list)  # "id#i (style)": failed now, the earlier answer kept
    stale: int = 0  # of ``kept``: asked with other settings (model, temperature, max tokens, prompt)
    notes: list[str] = field(default_factory=list)  # damaged cache records, finished interrupted writes
    truncated_by_style: Counter = field(default_factory=Counter)  # paths cut at --max-tokens (finish "length")
    valid_by_style: Counter | None = None  # formal tasks: paths whose program the solver accepted
    verify_timeouts: int = 0  # paths whose verification timed out (scored incorrect)


def _previous_rows(path: Path) -> dict[Any, dict[str, Any]]:
    """``id -> row`` of an existing enriched file: the answers a failed request must not replace.
    Unreadable lines are ignored (the file is only a fallback, and it is ours)."""
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise output_error(path, exc, "cannot read the previous results") from None
    out: dict[Any, dict[str, Any]] = {}
    with fh:
        for line in fh:
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(row, dict) and isinstance(row.get("responses"), list):
                with contextlib.suppress(TypeError):
                    out[row.get("id")] = row
    return out


def _good_previous_path(old: dict[str, Any], i: int) -> bool:
    resp, failed = old["responses"], old.get("failed")
    return (i < len(resp) and isinstance(resp[i], str) and bool(resp[i].strip())
            and not (isinstance(failed, list) and i < len(failed) and failed[i]))


def _keep_previous(out: dict[str, Any], old: dict[str, Any], i: int, key: str) -> bool:
    """Put the earlier answer of path ``i`` (every parallel field of it) back into ``out``; returns
    whether it is stale, i.e. it was asked with another cache key (model, settings or prompt)."""
    n_old = len(old["responses"])
    for f, vals in old.items():
        if isinstance(vals, list) and len(vals) == n_old and isinstance(out.get(f), list) and f not in (
                "cache_keys", "stale", "failed"):
            out[f][i] = vals[i]
    old_keys = old.get("cache_keys")
    old_key = old_keys[i] if isinstance(old_keys, list) and i < len(old_keys) else None
    out["cache_keys"][i] = old_key
    out["failed"][i] = False
    out["stale"][i] = stale = old_key != key  # an answer of unknown settings (no key) counts as stale
    return stale


def finalize(src: Source) -> FileReport:
    """Verify the answered paths and write ``<stem>.enriched.jsonl`` / ``.correct.jsonl`` as one commit.

    A path whose request failed in this run never replaces an answer the existing enriched file
    holds for it: that answer is kept (``stale`` when it was asked with other settings) and the
    report says so. ``*.correct.jsonl`` holds only rows with at least one verified path.
    """
    e_path, c_path = enriched_path(src.path), correct_path(src.path)
    to_score: list[tuple[str, dict[str, Any]]] = []
    for row, jobs in zip(src.rows, src.jobs):
        for job in jobs:
            if job.ok:
                to_score.append((job.completion.text, row))
    verdicts, verify_timeouts = verify_paths(src.task.name, to_score)
    scores = iter(verdicts)
    formal = is_formal(src.task)
    valid_by: Counter | None = Counter() if formal else None
    previous = _previous_rows(e_path) if any(not j.ok for jobs in src.jobs for j in jobs) else {}
    enriched_rows, failed, kept = [], [], []
    n_stale = 0
    correct_by, total_by, cut_by = Counter(), Counter(), Counter()
    for row, jobs in zip(src.rows, src.jobs):
        out = dict(row)
        out["prompts"] = [j.request.prompt for j in jobs]
        out["styles"] = [j.request.style for j in jobs]
        out["responses"], out["preds"], out["correct_flags"], out["failed"] = [], [], [], []
        out["cache_keys"], out["stale"] = [j.key for j in jobs], [False] * len(jobs)
        out["finish_reasons"] = [j.completion.finish_reason if j.ok else None for j in jobs]
        if formal:  # parallel to responses: the solver accepted the program; its first error (training signal)
            out["valid_flags"], out["diagnostics"] = [], []
        for i, job in enumerate(jobs):
            if job.ok:
                v = next(scores)
                pred = v.pred
                ok = v.correct and job.completion.finish_reason != "length"  # cut mid-answer: its last number is luck
                out["responses"].append(job.completion.text)
            else:
                v = Verdict(NA, False, valid=False if formal else None)
                pred, ok = NA, False
                out["responses"].append("")
                failed.append(f"{row['id']}#{i} ({job.request.style}): {job.error}")
            out["preds"].append(pred)
            out["correct_flags"].append(ok)
            out["failed"].append(not job.ok)
            if formal:
                out["valid_flags"].append(bool(v.valid))
                out["diagnostics"].append(v.diagnostic)
        try:
            old = previous.get(row["id"])
        except TypeError:
            old = None
        for i, job in enumerate(jobs):
            if not job.ok and old is not None and _good_previous_path(old, i):
                stale = _keep_previous(out, old, i, job.key)
                n_stale += stale
                kept.append(f"{row['id']}#{i} ({job.request.style})" + (" stale" if stale else ""))
        for i, job in enumerate(jobs):
            total_by[out["styles"][i]] += 1
            correct_by[out["styles"][i]] += int(bool(out["correct_flags"][i]))
            cut_by[out["styles"][i]] += int(out["finish_reasons"][i] == "length")
            if valid_by is not None:
                valid_by[out["styles"][i]] += int(bool(out["valid_flags"][i]))
        enriched_rows.append(out)
    notes = [n for n in [src.cache.damage_note() if src.cache is not None else None] if n]
    notes += [f"{src.path.parent}: removed {k} temporary file(s) of killed runs"
              for k in [sum(remove_stale_temps(p) for p in (e_path, c_path))] if k]
    staged: list[tuple[Path, Path]] = []
    try:
        staged.append((stage_jsonl(e_path, enriched_rows), e_path))
        staged.append((stage_jsonl(c_path, (correct_only(r) for r in enriched_rows
                                            if any(r["correct_flags"]))), c_path))
    except BaseException:
        discard(staged)
        raise
    commit(staged, journal_path(src.path))
    return FileReport(src.path, len(src.rows), sum(len(j) for j in src.jobs), failed, correct_by, total_by,
                      e_path, c_path, kept, n_stale, notes, cut_by, valid_by, verify_timeouts)


def journal_path(source: Path) -> Path:
    """The commit journal of a source's enriched/correct pair (see :mod:`distill.data.commit`)."""
    return source.with_name(f".{stem_of(source)}.commit.json")


TRUNCATION_HINT = "--max-tokens is too small for these answers: raise it (they are asked again with the new limit)"


@dataclass
class PromptReport:
    stats: RunStats
    files: list[FileReport]
    wall_s: float
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        s = self.stats
        lines = [
            f"teacher paths: {s.jobs} ({s.cached} from cache, {s.completed} asked now, {s.failed} failed)",
            f"requests: {s.requests}  retries: {s.retries}  tokens: prompt {s.prompt_tokens}, "
            f"completion {s.completion_tokens}",
        ]
        if s.errors:
            lines.append("faults seen: " + ", ".join(f"{k} x{v}" for k, v in s.errors.most_common()))
        tot, cor = Counter(), Counter()
        for f in self.files:
            tot.update(f.total_by_style)
            cor.update(f.correct_by_style)
        lines.append("correct per style: " + ", ".join(
            f"{st} {cor[st]}/{tot[st]}" for st in tot))
        valid = self.valid_per_style()
        if valid is not None:
            lines.append("valid programs per style (the solver accepts them): " + ", ".join(
                f"{st} {valid[st]}/{tot[st]}" for st in tot))
        n_timeouts = sum(f.verify_timeouts for f in self.files)
        if n_timeouts:
            lines.append(f"verification timed out for {n_timeouts} path(s) (scored incorrect)")
        cut = self.truncated_per_style()
        if cut:
            lines.append("CUT at the token limit (finish_reason 'length', never counted correct) per style: "
                         + ", ".join(f"{st} {cut[st]}/{tot[st]}" for st in tot if cut[st]) + f"; {TRUNCATION_HINT}")
        if s.adaptation_note():
            lines.append(f"note: {s.adaptation_note()}")
        for f in self.files:
            lines.append(f"  {f.path}: {f.rows} rows -> {f.enriched.name}, {f.correct.name}")
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"note: {n}" for f in self.files for n in f.notes]
        kept = [x for f in self.files for x in f.kept]
        if kept:
            stale = sum(f.stale for f in self.files)
            lines.append(f"KEPT {len(kept)} earlier answer(s) where this run's request failed ({stale} stale: "
                         f"asked with other settings, marked 'stale' in the enriched file; rerun to replace them): "
                         + ", ".join(kept[:10]) + (f" ... and {len(kept) - 10} more" if len(kept) > 10 else ""))
        failed = [x for f in self.files for x in f.failed]
        if failed:
            lines.append(f"FAILED paths ({len(failed)}; recorded as failed, rerun to retry them):")
            lines += [f"  {x}" for x in failed[:20]]
            if len(failed) > 20:
                lines.append(f"  ... and {len(failed) - 20} more")
        lines.append(f"wall time: {self.wall_s:.1f} s (requests {s.request_wall_s:.1f} s)")
        return "\n".join(lines)

    def valid_per_style(self) -> Counter | None:
        """Formal tasks: paths per style whose program the solver accepted; None when no file is formal."""
        counts = [f.valid_by_style for f in self.files if f.valid_by_style is not None]
        if not counts:
            return None
        out: Counter = Counter()
        for c in counts:
            out.update(c)
        return out

    def truncated_per_style(self) -> Counter:
        """Paths per style that stopped at the token limit (kept in the enriched file, never correct)."""
        cut: Counter = Counter()
        for f in self.files:
            cut.update(f.truncated_by_style)
        return +cut

    def as_dict(self) -> dict[str, Any]:
        tot, cor = Counter(), Counter()
        for f in self.files:
            tot.update(f.total_by_style)
            cor.update(f.correct_by_style)
        return {**self.stats.as_dict(), "wall_s": round(self.wall_s, 3),
                "correct_per_style": {st: [cor[st], tot[st]] for st in tot},
                "truncated_per_style": {st: [self.truncated_per_style()[st], tot[st]] for st in tot},
                **({"valid_per_style": {st: [valid[st], tot[st]] for st in tot}}
                   if (valid := self.valid_per_style()) is not None else {}),
                "verify_timeouts": sum(f.verify_timeouts for f in self.files),
                **({"truncated_hint": TRUNCATION_HINT} if self.truncated_per_style() else {}),
                "failed_paths": [x for f in self.files for x in f.failed],
                "kept_previous": [x for f in self.files for x in f.kept],
                "stale_paths": sum(f.stale for f in self.files),
                "notes": [*self.notes, *(n for f in self.files for n in f.notes)],
                "files": [str(f.path) for f in self.files]}


async def _generate(backend: Backend, jobs: list[Job], settings: PromptSettings, progress: bool) -> RunStats:
    try:
        return await run_jobs(backend, jobs, concurrency=settings.concurrency,
                              request_timeout=settings.request_timeout, policy=settings.retry,
                              progress=progress, desc=f"teacher {settings.model}")
    finally:
        close = getattr(backend, "aclose", None)
        if close is not None:
            await close()


def prepare_outputs(stack: contextlib.ExitStack, sources: list[Source],
                    summary_json: str | Path | None = None) -> list[str]:
    """Everything that could make the results unwritable, checked before the first request: a
    per-source lock (two runs on one file would pay twice and race their renames), interrupted
    commits finished, and every output (cache, enriched, correct, summary) writable. Returns notes."""
    lock_sources(stack, [s.path for s in sources], purpose="distill prompt")
    notes = recover(ancestors(s.path for s in sources))  # also regen-correct's journal at its --root
    for src in sources:
        for target in (src.cache_path, enriched_path(src.path), correct_path(src.path)):
            check_writable(target)
    if summary_json:
        check_writable(Path(summary_json))
    return notes


def run_prompt(backend: Backend, sources: list[Source], settings: PromptSettings, *,
               progress: bool = True, summary_json: str | Path | None = None) -> PromptReport:
    """Lock and check the outputs, then ask, cache, verify and write for every source. The backend
    is closed afterwards."""
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            notes = prepare_outputs(stack, sources, summary_json)
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
        try:
            stats = asyncio.run(_generate(backend, jobs, settings, progress))
        finally:
            for src in sources:
                if src.cache is not None:
                    src.cache.close()
        files = [finalize(src) for src in sources]
        report = PromptReport(stats, files, time.perf_counter() - t0, notes)
        if summary_json:
            atomic_write_text(Path(summary_json), json.dumps(report.as_dict(), indent=2) + "\n")
    return report


def choose_styles(styles: str | None, styles_file: str | Path | None) -> tuple[str, ...]:
    """``--styles`` / ``--styles-file`` -> style names. The file's styles are registered; without
    ``--styles`` they are asked after the defaults."""
    extra = load_styles_file(styles_file) if styles_file else []
    if styles:
        chosen = parse_styles(styles)
    elif extra:
        chosen = parse_styles(",".join(dict.fromkeys([*DEFAULT_STYLES, *(s.name for s in extra)])))
    else:
        chosen = parse_styles(None)
    return tuple(s.name for s in chosen)


def run_prompting(teacher: TeacherOptions, selection: SourceSelection, *, n: int = 6, styles: str | None = None,
                  styles_file: str | Path | None = None, temperature: float = 0.7, max_tokens: int = 1024,
                  progress: bool = True, summary_json: str | Path | None = None) -> PromptReport:
    """``distill prompt``: validate everything, build the backend, read every source, then ask.

    Order matters: flag errors come before the backend is built (so a missing API key is not
    reported for a typo), and the backend before any file is read; a bad source line, a source
    another run holds, or an output that cannot be written (read-only, full disk) fails before any
    request is paid for (:func:`prepare_outputs`). ``summary_json`` also gets :meth:`PromptReport.as_dict`.
    """
    settings = PromptSettings(model=teacher.model, n=n, styles=choose_styles(styles, styles_file),
                              temperature=temperature, max_tokens=max_tokens, concurrency=teacher.concurrency,
                              request_timeout=teacher.request_timeout, retry=teacher.retry_policy())
    selection.tasks()
    backend = teacher.make_backend()
    try:
        sources = load_sources(selection.pairs())
    except BaseException:
        close = getattr(backend, "aclose", None)
        if close is not None:
            asyncio.run(close())
        raise
    return run_prompt(backend, sources, settings, progress=progress, summary_json=summary_json)
