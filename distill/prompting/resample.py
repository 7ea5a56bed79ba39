"""``--resample-unsolved K``: ask the questions that have no verified path again, in rounds.

After the first pass every answered path is verified; a question none of whose paths is correct
(a path cut at the token limit never is) gets one more path per resample style (``--resample-styles``,
default the run's styles) with new sample indices: round ``r`` of a run with ``--n N`` and ``m``
resample styles uses indices ``N + (r-1)*m ... N + r*m - 1``. The answers go to the same cache, so
a rerun with the same settings finds every round's answers there, verifies them the same way and
pays for nothing again. Rounds stop early when every question is solved or the spend cap is reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.prompting.engine import Job
from distill.prompting.planning import PromptSettings, Source, make_job
from distill.prompting.stages import verify_paths


@dataclass
class RoundResult:
    """One resampling round: how many questions it asked, with how many paths, and how many it solved."""

    round: int
    questions: int
    paths: int
    solved: int = 0
    not_asked: int = 0  # paths of this round the spend cap kept from being asked

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round, "questions": self.questions, "paths": self.paths, "solved": self.solved,
                "not_asked": self.not_asked}


def path_correct(job: Job) -> bool:
    """The rule of ``correct_flags``: answered, verified correct, and not cut at the token limit (for a
    path sent back with ``--repair-rounds``, its final answer)."""
    job = job.final
    return (job.ok and job.verdict is not None and bool(job.verdict.correct)
            and job.completion.finish_reason != "length")


def verify_new(sources: list[Source]) -> None:
    """Score every answered path (and repair round) that has no verdict yet (the verdict is kept on the job)."""
    for src in sources:
        todo = [(step, row) for row, jobs in zip(src.rows, src.jobs) for job in jobs for step in [job, *job.repairs]
                if step.ok and step.verdict is None]
        verdicts, timeouts = verify_paths(src.task.name, [(job.completion.text, row) for job, row in todo])
        src.verify_timeouts += timeouts
        for (job, _), verdict in zip(todo, verdicts):
            job.verdict = verdict


def unsolved(src: Source) -> list[int]:
    """Indices of the rows of ``src`` with no correct path."""
    return [r for r, jobs in enumerate(src.jobs) if not any(path_correct(j) for j in jobs)]


def round_jobs(sources: list[Source], settings: PromptSettings, rnd: int) -> tuple[list[Job], list[list[Job]]]:
    """Round ``rnd``'s jobs for every unsolved question, appended to their rows' job lists. Returns all
    jobs and the new jobs per asked question (to count what the round solved)."""
    styles = settings.resample_style_objs()
    first = settings.n + (rnd - 1) * len(styles)
    all_jobs: list[Job] = []
    groups: list[list[Job]] = []
    for src in sources:
        for r in unsolved(src):
            row = src.rows[r]
            new = [make_job(src, row, style, first + j, settings, resample_round=rnd) for j, style in enumerate(styles)]
            src.jobs[r].extend(new)
            groups.append(new)
            all_jobs.extend(new)
    return all_jobs, groups


def count_round(result: RoundResult, groups: list[list[Job]]) -> None:
    """After the round's answers are verified: questions that now have a correct path among its paths."""
    result.solved = sum(any(path_correct(j) for j in g) for g in groups)
    result.not_asked = sum(j.skipped for g in groups for j in g)
