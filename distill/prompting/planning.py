"""Request planning for ``distill prompt``: settings, sources and one job per path.

Paths per question: ``n`` paths with the styles cycled in the given order (path ``i``
uses ``styles[i % len(styles)]`` and sample index ``i``), so ``--n 6`` with the six
default styles asks each style once and ``--n 12`` twice. Each path's cache key is
(model, prompt, style, sample index, temperature, max_tokens): raising ``--n`` later
re-uses every answer already paid for.

``--resample-unsolved K`` adds paths to questions that have no verified path after the first
pass (:mod:`distill.prompting.resample`): round ``r`` asks one path per resample style with the
sample indices after the ones used so far, so their cache slots are new and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.jsonl import read_rows, stem_of
from distill.data.tasks import TaskSpec
from distill.errors import ConfigError
from distill.prompting.backend import Request
from distill.prompting.cache import ResponseCache, cache_key
from distill.prompting.cost import Prices, check_max_spend
from distill.prompting.engine import Job
from distill.prompting.prompts import build_prompt
from distill.prompting.retry import RetryPolicy
from distill.prompting.styles import DEFAULT_STYLES, Style, get_style, load_styles_file, parse_styles


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
    prices: Prices | None = None  # None: tokens only, no cost
    max_spend: float | None = None  # USD for this run's requests (needs prices)
    resample_unsolved: int = 0  # rounds of re-asking questions with no verified path
    resample_styles: tuple[str, ...] | None = None  # None: the run's styles
    repair_rounds: int = 0  # formal tasks: send an invalid program back with the solver's error, up to K times

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
        check_max_spend(self.max_spend, self.prices, self.model)
        if not isinstance(self.resample_unsolved, int) or self.resample_unsolved < 0:
            raise ConfigError(f"--resample-unsolved must be >= 0 rounds (got {self.resample_unsolved})")
        if not isinstance(self.repair_rounds, int) or isinstance(self.repair_rounds, bool) or self.repair_rounds < 0:
            raise ConfigError(f"--repair-rounds must be >= 0 rounds (got {self.repair_rounds})")
        if self.resample_styles is not None:
            if not self.resample_styles:
                raise ConfigError("--resample-styles must list at least one style")
            if not self.resample_unsolved:
                raise ConfigError("--resample-styles needs --resample-unsolved K (rounds >= 1)")
            for s in self.resample_styles:
                get_style(s)

    def style_objs(self) -> list[Style]:
        return [get_style(s) for s in self.styles]

    def resample_style_objs(self) -> list[Style]:
        return [get_style(s) for s in (self.resample_styles or self.styles)]


@dataclass
class Source:
    """One source file, its rows and (once planned) one job list per row."""

    task: TaskSpec
    path: Path
    rows: list[dict[str, Any]]
    cache: ResponseCache | None = None
    jobs: list[list[Job]] = field(default_factory=list)
    verify_timeouts: int = 0  # paths whose verification timed out while resampling (finalize adds its own)
    repairs_file: bool = False  # --repair-rounds: also write <stem>.repairs.jsonl

    @property
    def repairs_path(self) -> Path:
        return self.path.with_name(f"{stem_of(self.path)}.repairs.jsonl")

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
        src.repairs_file = settings.repair_rounds > 0
        src.jobs = []
        for row in src.rows:
            row_jobs = [make_job(src, row, styles[i % len(styles)], i, settings) for i in range(settings.n)]
            src.jobs.append(row_jobs)
            all_jobs.extend(row_jobs)
    return all_jobs


def make_job(src: Source, row: dict[str, Any], style: Style, i: int, settings: PromptSettings,
             **meta: Any) -> Job:
    """The job of path ``i`` (its sample index) of ``row`` in ``style``; ``meta`` is stored in its cache record."""
    prompt = build_prompt(src.task, row, style)
    key = cache_key(model=settings.model, prompt=prompt, style=style.name, sample_index=i,
                    temperature=settings.temperature, max_tokens=settings.max_tokens)
    req = Request(prompt=prompt, style=style.name, row=row, task=src.task.name, sample_index=i,
                  temperature=settings.temperature, max_tokens=settings.max_tokens)
    return Job(key, req, src.cache, meta={"id": row["id"], "style": style.name, "sample_index": i,
                                          "model": settings.model, **meta})


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
