"""``--repair-rounds K`` (formal tasks): send an invalid program back to the teacher with the solver's error.

After a pass is verified, every answered path whose program the solver rejected (``valid`` False) is
asked again *in the same conversation*: the original prompt, the teacher's answer, then a user turn
with the solver's diagnostic asking for the fixed program (:func:`repair_ask`); a second round adds the
second answer and its diagnostic, and so on, up to ``K`` rounds per path, stopping once the program is
valid (or a repair request fails, or the ``--max-spend`` cap is reached).

How a conversation travels: :class:`~distill.prompting.backend.Request` ``messages`` holds the turns,
which the chat backends (OpenAI, Gemini, the batch API) send as they are; ``prompt`` holds the same
conversation as one text (:func:`conversation_text`) for backends that take a single prompt.

Each round is one request with its own cache slot: the key covers the round and the whole conversation
(so every earlier answer and diagnostic), so a rerun with the same settings finds every round in the
cache and pays nothing. Rounds are billed, counted and capped like every other request.

What is recorded: the path's final answer (the last answered round) is what the enriched file holds and
what is verified for the correct file; ``repair_trails`` (parallel to ``responses``; empty for a path
never sent back) lists every round's ``program``, ``diagnostic`` and ``valid`` flag (round 0 is the
first answer); and each step from a rejected program to a *valid* one becomes a repair example in
``<stem>.repairs.jsonl`` with the row format of ``distill augment --kind repair`` (operator
``teacher_repair``). A step to a program that is still invalid is in the trail but not an example: it
would teach a student to write another broken program.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from distill.data.tasks import TaskSpec, is_formal
from distill.errors import ConfigError
from distill.prompting.backend import Request
from distill.prompting.cache import cache_key
from distill.prompting.engine import Job, RunStats
from distill.prompting.planning import PromptSettings, Source
from distill.prompting.repair_rows import REPAIR_OPERATOR, repair_examples, trail
from distill.prompting.resample import verify_new

__all__ = ["REPAIR_OPERATOR", "RepairRound", "check_repair_tasks", "conversation", "conversation_text",
           "needs_repair", "repair_ask", "repair_examples", "repair_job", "run_repairs", "trail"]


@dataclass
class RepairRound:
    """One repair round: paths sent back, how many are valid now, and how many could not be asked."""

    round: int
    paths: int = 0
    fixed: int = 0  # the round's answer is a valid program
    failed: int = 0  # the repair request failed (the path keeps its previous answer)
    not_asked: int = 0  # the --max-spend cap kept it from being asked

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round, "paths": self.paths, "fixed": self.fixed, "failed": self.failed,
                "not_asked": self.not_asked}


def check_repair_tasks(tasks: list[TaskSpec], rounds: int) -> None:
    """``--repair-rounds`` needs a solver's error to send back: every selected task must be formal."""
    if not rounds:
        return
    other = [t.name for t in tasks if not is_formal(t)]
    if other:
        raise ConfigError(f"--repair-rounds works on the formal tasks only (smt, asp, dot: a solver's error is "
                          f"sent back), not {', '.join(other)}; select them with --dataset smt,asp,dot")


def repair_ask(language: str, diagnostic: str | None) -> str:
    """The user turn that sends a rejected program back."""
    from distill.verify.formal import FENCES

    error = (diagnostic or "").strip() or "the solver rejected the program (no message)"
    return (f"The solver rejected the program in your answer.\n\nSolver error:\n{error}\n\n"
            f"Fix the program. Reply with the whole corrected program in a ```{FENCES[language][0]} block.")


def conversation(job: Job, language: str) -> list[dict[str, str]]:
    """The turns of the path's next repair request: prompt, then each answer and its diagnostic."""
    msgs = [{"role": "user", "content": job.request.prompt}]
    for step in [job, *job.repairs]:
        msgs.append({"role": "assistant", "content": step.completion.text})
        msgs.append({"role": "user", "content": repair_ask(language, step.verdict.diagnostic)})
    return msgs


def conversation_text(messages: list[dict[str, str]]) -> str:
    """The conversation as one prompt, for backends that ignore ``messages``."""
    parts = [messages[0]["content"]]
    for m in messages[1:]:
        parts.append(f"Your answer:\n{m['content']}" if m["role"] == "assistant" else m["content"])
    return "\n\n".join(parts)


def needs_repair(job: Job, rnd: int) -> bool:
    """Is the path due for round ``rnd``: ``rnd - 1`` rounds so far, the last answered and invalid."""
    if len(job.repairs) != rnd - 1:
        return False
    last = job.repairs[-1] if job.repairs else job
    return last.ok and last.verdict is not None and last.verdict.valid is False


def repair_job(src: Source, job: Job, rnd: int, settings: PromptSettings) -> Job:
    """Round ``rnd``'s request for the path of ``job`` (appended to ``job.repairs``)."""
    msgs = conversation(job, src.task.kind)
    req = job.request
    key = cache_key(model=settings.model, prompt=json.dumps(msgs, ensure_ascii=False), style=req.style,
                    sample_index=req.sample_index, temperature=settings.temperature,
                    max_tokens=settings.max_tokens, kind=f"repair-{rnd}")
    new = Request(prompt=conversation_text(msgs), style=req.style, row=req.row, task=req.task,
                  sample_index=req.sample_index, temperature=settings.temperature, max_tokens=settings.max_tokens,
                  messages=msgs)
    rep = Job(key, new, job.cache, meta={**job.meta, "repair_round": rnd})
    job.repairs.append(rep)
    return rep


Ask = Callable[[list[Job], str], Awaitable[RunStats]]


async def run_repairs(sources: list[Source], settings: PromptSettings, ask: Ask, budget: Any,
                      results: dict[int, RepairRound]) -> RunStats | None:
    """Up to ``settings.repair_rounds`` rounds over every path due for one; ``results`` gets each round's
    counts (added to, so rounds after a resampling pass count into the same rows). Returns the rounds'
    request stats (None when nothing was asked). Every answered path is verified when this returns."""
    stats: RunStats | None = None
    for rnd in range(1, settings.repair_rounds + 1):
        verify_new(sources)
        if budget is not None and budget.reached:
            break
        batch = [repair_job(src, job, rnd, settings) for src in sources for jobs in src.jobs for job in jobs
                 if needs_repair(job, rnd)]
        if not batch:
            break
        got = await ask(batch, f"repair {rnd}/{settings.repair_rounds} {settings.model}")
        if stats is None:
            stats = got
        else:
            stats.merge(got)
        verify_new(sources)
        res = results.setdefault(rnd, RepairRound(rnd))
        res.paths += len(batch)
        res.fixed += sum(j.ok and bool(j.verdict.valid) for j in batch)
        res.not_asked += sum(j.skipped for j in batch)
        res.failed += sum(not j.ok and not j.skipped for j in batch)
    verify_new(sources)
    return stats
