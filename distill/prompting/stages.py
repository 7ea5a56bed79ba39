"""The file stages of ``distill prompt`` around the requests: preflight and output.

Before the first request, :func:`prepare_outputs` locks the sources, finishes interrupted commits
and checks every output is writable. After them, :func:`finalize` verifies the answered paths and
writes ``<stem>.enriched.jsonl`` / ``.correct.jsonl`` as one commit (:mod:`distill.data.commit`).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.commit import (
    ancestors, check_writable, commit, discard, lock_sources, recover, remove_stale_temps,
)
from distill.data.jsonl import correct_only, correct_path, enriched_path, output_error, stage_jsonl, stem_of
from distill.data.tasks import is_formal
from distill.prompting.cost import Usage
from distill.prompting.planning import Source
from distill.verify.types import NA, Verdict


def prepare_outputs(stack: contextlib.ExitStack, sources: list[Source],
                    summary_json: str | Path | None = None, *, repairs: bool = False) -> list[str]:
    """Everything that could make the results unwritable, checked before the first request: a
    per-source lock (two runs on one file would pay twice and race their renames), interrupted
    commits finished, and every output (cache, enriched, correct, summary; with ``repairs`` the
    ``<stem>.repairs.jsonl`` of ``--repair-rounds``) writable. Returns notes."""
    lock_sources(stack, [s.path for s in sources], purpose="distill prompt")
    notes = recover(ancestors(s.path for s in sources))  # also regen-correct's journal at its --root
    for src in sources:
        for target in (src.cache_path, enriched_path(src.path), correct_path(src.path),
                       *([src.repairs_path] if repairs else [])):
            check_writable(target)
    if summary_json:
        check_writable(Path(summary_json))
    return notes


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
    usage: Usage = field(default_factory=Usage)  # tokens billed in this run for this file
    usage_cached: Usage = field(default_factory=Usage)  # what its answers served from the cache cost when asked
    not_asked: int = 0  # paths the --max-spend cap kept from being asked (failed in the enriched file)
    repairs: Path | None = None  # --repair-rounds: <stem>.repairs.jsonl
    repair_examples: int = 0  # rows written to it


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
    report says so. ``*.correct.jsonl`` holds only rows with at least one verified path. A path sent
    back with ``--repair-rounds`` is its final answer, with its trail in ``repair_trails``; its repair
    examples go to ``<stem>.repairs.jsonl`` in the same commit (:mod:`distill.prompting.repair`).
    """
    from distill.prompting.repair_rows import repair_examples, trail

    e_path, c_path = enriched_path(src.path), correct_path(src.path)
    to_score: list[tuple[str, dict[str, Any]]] = []
    usage, usage_cached = Usage(), Usage()
    for row, jobs in zip(src.rows, src.jobs):
        for job in jobs:
            if job.final.ok and job.final.verdict is None:  # (paths verified while resampling keep their verdict)
                to_score.append((job.final.completion.text, row))
            for step in [job, *job.repairs]:
                usage += step.spent
                if step.from_cache:
                    c = step.completion
                    usage_cached.add(c.prompt_tokens, c.completion_tokens, c.cached_tokens)
    verdicts, verify_timeouts = verify_paths(src.task.name, to_score)
    verify_timeouts += src.verify_timeouts
    scores = iter(verdicts)
    formal = is_formal(src.task)
    valid_by: Counter | None = Counter() if formal else None
    previous = _previous_rows(e_path) if any(not j.ok for jobs in src.jobs for j in jobs) else {}
    enriched_rows, failed, kept, repair_rows = [], [], [], []
    n_stale = 0
    correct_by, total_by, cut_by = Counter(), Counter(), Counter()
    for row, jobs in zip(src.rows, src.jobs):
        out = dict(row)
        out["prompts"] = [j.request.prompt for j in jobs]
        out["styles"] = [j.request.style for j in jobs]
        out["responses"], out["preds"], out["correct_flags"], out["failed"] = [], [], [], []
        out["cache_keys"], out["stale"] = [j.key for j in jobs], [False] * len(jobs)
        out["finish_reasons"] = [j.final.completion.finish_reason if j.ok else None for j in jobs]
        if formal:  # parallel to responses: the solver accepted the program; its first error (training signal)
            out["valid_flags"], out["diagnostics"] = [], []
        if src.repairs_file:
            out["repair_trails"] = [trail(j, src.task.kind) for j in jobs]
            repair_rows.extend(repair_examples(row, jobs, src.task.kind))
        for i, job in enumerate(jobs):
            job = job.final
            if job.ok:
                v = job.verdict if job.verdict is not None else next(scores)
                pred = v.pred
                ok = v.correct and job.completion.finish_reason != "length"  # cut mid-answer: its last number is luck
                out["responses"].append(job.completion.text)
            else:
                v = Verdict(NA, False, valid=False if formal else None)
                pred, ok = NA, False
                out["responses"].append("")
                if not job.skipped:  # (not asked: counted, not listed)
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
              for k in [sum(remove_stale_temps(p) for p in (e_path, c_path, src.repairs_path))] if k]
    staged: list[tuple[Path, Path]] = []
    try:
        staged.append((stage_jsonl(e_path, enriched_rows), e_path))
        staged.append((stage_jsonl(c_path, (correct_only(r) for r in enriched_rows
                                            if any(r["correct_flags"]))), c_path))
        if src.repairs_file:
            staged.append((stage_jsonl(src.repairs_path, repair_rows), src.repairs_path))
    except BaseException:
        discard(staged)
        raise
    commit(staged, journal_path(src.path))
    return FileReport(src.path, len(src.rows), sum(len(j) for j in src.jobs), failed, correct_by, total_by,
                      e_path, c_path, kept, n_stale, notes, cut_by, valid_by, verify_timeouts, usage, usage_cached,
                      sum(j.skipped for jobs in src.jobs for j in jobs),
                      src.repairs_path if src.repairs_file else None, len(repair_rows))


def journal_path(source: Path) -> Path:
    """The commit journal of a source's enriched/correct pair (see :mod:`distill.data.commit`)."""
    return source.with_name(f".{stem_of(source)}.commit.json")
