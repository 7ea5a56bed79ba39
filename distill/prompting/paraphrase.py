"""Tone paraphrases of problem text through the teacher backend (``distill augment --kind paraphrase``).

The teacher rewrites each problem's text in a few tones (formal, casual, terse, ...); the program
(``gold_answer``) is unchanged, so a paraphrase is a new training row only if it still states the
same problem. That is checked, not trusted: a paraphrase is kept only when every *fact token* of
the original survives in it -- numbers (compared as values: ``2.50`` = ``2.5``, ``1,000`` = ``1000``),
quoted strings, backtick spans, names (capitalised words that do not start a sentence), identifiers
with digits or underscores (``x1``, ``node_a``) and one-letter variables (``x``; not ``a``/``I``).
A dropped or changed number, a renamed entity or a lost variable rejects it.

Every answer goes through the same engine and cache as ``distill prompt`` (retries, adaptive
concurrency, nothing paid twice: the cache sits beside the output file).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import ConfigError
from distill.prompting.transport import TeacherOptions

#: tone -> how the teacher is asked to write
TONES: dict[str, str] = {
    "formal": "in a formal, precise register",
    "casual": "in a casual, conversational tone, as a colleague would ask it",
    "terse": "as tersely as possible, keeping every fact",
    "story": "as a short story that still states every fact and the exact question",
}
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?![\w])")
_QUOTED = re.compile(r"\"[^\"\n]+\"|`[^`\n]+`")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def paraphrase_prompt(question: str, tone: str) -> str:
    return ("Rewrite the following problem statement " + TONES[tone] + ". Keep every number, name, quoted "
            "string and variable exactly as written, change nothing about what is asked, and do not solve it. "
            "Reply with the rewritten problem only.\n\nProblem:\n" + question.strip())


def _number_value(tok: str) -> str:
    v = tok.replace(",", "").lstrip("+")
    if "." in v:
        v = v.rstrip("0").rstrip(".") or "0"
    return v


def fact_tokens(text: str) -> set[str]:
    """The tokens a faithful paraphrase must keep (see the module docstring)."""
    facts = {"#" + _number_value(m.group()) for m in _NUMBER.finditer(text)}
    facts |= {m.group() for m in _QUOTED.finditer(text)}
    prose = _QUOTED.sub(" ", text)
    for m in _WORD.finditer(prose):
        w, before = m.group(), prose[:m.start()].rstrip()
        sentence_start = not before or before[-1] in ".!?:\n"
        if any(c.isdigit() for c in w) or "_" in w:
            facts.add(w)
        elif len(w) == 1 and w not in ("a", "A", "I"):
            facts.add(w)
        elif w[0].isupper() and not sentence_start and len(w) > 1:
            facts.add(w)
    return facts


def missing_facts(original: str, paraphrase: str) -> list[str]:
    """Fact tokens of ``original`` that ``paraphrase`` lost (sorted; empty = faithful)."""
    have = fact_tokens(paraphrase) | {m.group() for m in _WORD.finditer(paraphrase)}
    return sorted(t for t in fact_tokens(original) if t not in have)


def clean_paraphrase(text: str) -> str:
    """The teacher's answer without a leading label (``Problem:``) or wrapping quotes."""
    t = re.sub(r"^\s*(?:rewritten\s+)?problem(?:\s+statement)?\s*:\s*", "", text.strip(), flags=re.I)
    if len(t) > 1 and t[0] == t[-1] == '"':
        t = t[1:-1].strip()
    return t


@dataclass
class ParaphraseReport:
    asked: int = 0
    kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # tone -> unfaithful paraphrases dropped
    failed: int = 0
    examples: list[str] = field(default_factory=list)  # a few "id tone: missing [...]" lines

    def format(self) -> str:
        rej = sum(self.rejected.values())
        lines = [f"paraphrases: {self.asked} asked, {self.kept} kept, {rej} rejected (lost a fact), "
                 f"{self.failed} failed"]
        lines += [f"  {x}" for x in self.examples[:10]]
        return "\n".join(lines)


def paraphrase_rows(teacher: TeacherOptions, rows: list[dict[str, Any]], tones: list[str], cache_path: str | Path, *,
                    temperature: float = 0.7, max_tokens: int = 512,
                    progress: bool = True) -> tuple[list[dict[str, Any]], ParaphraseReport]:
    """One row per (row, tone) whose paraphrase keeps every fact: ``{**row, id: ID/tone-T, question:
    paraphrase, original_question, tone}`` (``messages`` dropped: built from the new question by
    whoever trains on it). Unknown tones and transport settings fail before any request."""
    from distill.prompting.backend import Request
    from distill.prompting.cache import ResponseCache, cache_key
    from distill.prompting.engine import Job, run_jobs

    bad = [t for t in tones if t not in TONES]
    if bad or not tones:
        raise ConfigError(f"--tones {','.join(tones)}: unknown {bad}; choose from {', '.join(TONES)}")
    policy = teacher.retry_policy()
    backend = teacher.make_backend()
    cache = ResponseCache(cache_path)
    jobs: list[tuple[dict[str, Any], str, Job]] = []
    try:
        for row in rows:
            q = (row.get("question") or "").strip()
            if not q:
                continue
            for tone in tones:
                prompt = paraphrase_prompt(q, tone)
                key = cache_key(model=teacher.model, prompt=prompt, style=f"tone-{tone}", sample_index=0,
                                temperature=temperature, max_tokens=max_tokens, kind="paraphrase")
                req = Request(prompt=prompt, style=f"tone-{tone}", row=row, task="paraphrase", sample_index=0,
                              temperature=temperature, max_tokens=max_tokens)
                jobs.append((row, tone, Job(key, req, cache, meta={"id": row["id"], "tone": tone})))

        async def go():
            try:
                return await run_jobs(backend, [j for _, _, j in jobs], concurrency=teacher.concurrency,
                                      request_timeout=teacher.request_timeout, policy=policy, progress=progress,
                                      desc=f"paraphrase {teacher.model}")
            finally:
                close = getattr(backend, "aclose", None)
                if close is not None:
                    await close()

        asyncio.run(go())
    finally:
        cache.close()
    report = ParaphraseReport(asked=len(jobs), rejected={t: 0 for t in tones})
    out = []
    for row, tone, job in jobs:
        if not job.ok:
            report.failed += 1
            continue
        text = clean_paraphrase(job.completion.text)
        lost = missing_facts(row["question"], text)
        if lost or not text:
            report.rejected[tone] += 1
            report.examples.append(f"{row['id']} {tone}: lost {lost or ['everything']}")
            continue
        report.kept += 1
        item = {k: v for k, v in row.items() if k != "messages"}
        out.append({**item, "id": f"{row['id']}/tone-{tone}", "question": text,
                    "original_question": row["question"], "tone": tone})
    return out, report


def paraphrase_file(task: str, input: str | Path, out: str | Path, teacher: TeacherOptions, tones: list[str], *,
                    source: str | Path | None = None, temperature: float = 0.7, max_tokens: int = 512,
                    progress: bool = True) -> ParaphraseReport:
    """``distill augment --kind paraphrase``: the rows of ``input`` (a formal task's source rows or a
    correct file with ``source``), paraphrased per tone, written to ``out`` atomically; the answers are
    cached in ``<out stem>.paraphrase.cache.jsonl`` beside it (a rerun asks nothing twice). The output
    and cache are checked writable before the first request."""
    from distill.data.commit import check_writable
    from distill.data.jsonl import atomic_write_jsonl
    from distill.verify.formal.augment_files import read_program_rows

    out = Path(out)
    cache_path = out.with_name(out.name.removesuffix(".jsonl") + ".paraphrase.cache.jsonl")
    for target in (out, cache_path):
        check_writable(target)
    rows = read_program_rows(input, task, source=source)
    items, report = paraphrase_rows(teacher, rows, tones, cache_path, temperature=temperature,
                                    max_tokens=max_tokens, progress=progress)
    atomic_write_jsonl(out, items)
    return report
