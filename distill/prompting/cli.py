"""``distill prompt``: ask a teacher for multi-style reasoning paths; write enriched/correct logs.

Examples::

    distill prompt --root ./data --dataset gsm8k --n 6 --model gpt-4o-mini
    distill prompt --root ./data --dataset all --backend openai --base-url http://localhost:8000/v1 \\
        --model Qwen/Qwen2.5-7B-Instruct --concurrency 64
    distill prompt --root ./data --dataset arith --backend scripted --model scripted

Outputs beside each source ``<stem>.jsonl``: ``<stem>.enriched.jsonl``, ``<stem>.correct.jsonl``
and the answer cache ``<stem>.cache.jsonl`` (a rerun re-asks only what is not in it).
API keys come from the environment only (OPENAI_API_KEY, GOOGLE_API_KEY / GEMINI_API_KEY).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distill.errors import ConfigError


def add_transport_arguments(parser: argparse.ArgumentParser, *, default_model: str) -> None:
    """Flags shared with ``distill judge``: backend, model, concurrency, timeouts, retries."""
    parser.add_argument("--root", default="./data", help="data root holding <task>/<split>.jsonl (default ./data)")
    parser.add_argument("--dataset", default="all",
                        help="task name, comma list, or 'all' (default all)")
    parser.add_argument("--input", type=Path, default=None,
                        help="one file to process instead of scanning --root (needs a single --dataset)")
    parser.add_argument("--include-train", action="store_true", help="also process train files / train/ folders")
    parser.add_argument("--backend", default="openai", help="openai | gemini | scripted (default openai)")
    parser.add_argument("--model", default=default_model, help=f"model name (default {default_model})")
    parser.add_argument("--base-url", default=None,
                        help="OpenAI-compatible server URL (vLLM, Ollama, llama.cpp) or Gemini endpoint")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight across all files (default 16)")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds per request (default 60)")
    parser.add_argument("--max-attempts", type=int, default=6, help="tries per request incl. the first (default 6)")
    parser.add_argument("--retry-base", type=float, default=1.0,
                        help="first backoff in seconds; doubles per retry, jittered (default 1)")
    parser.add_argument("--max-retry-delay", type=float, default=60.0, help="backoff cap in seconds (default 60)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--summary-json", type=Path, default=None, help="also write the run summary as JSON here")
    parser.add_argument("--seed", type=int, default=0, help="scripted backend: seed (default 0)")
    parser.add_argument("--wrong-rate", type=float, default=0.2,
                        help="scripted backend: share of wrong answers (default 0.2)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1]
    add_transport_arguments(parser, default_model="gpt-4o-mini")
    parser.add_argument("--n", type=int, default=6,
                        help="paths per question; styles are cycled in order (default 6)")
    parser.add_argument("--styles", default=None,
                        help="comma list of styles (default cot,program,knowledge,tot,fwd_bwd,plain)")
    parser.add_argument("--styles-file", type=Path, default=None,
                        help="YAML/JSON file {name: template with {core}} adding or replacing styles")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="max completion tokens (default 1024)")


def make_backend(args: argparse.Namespace):
    from distill.prompting.backends import get_backend

    return get_backend(args.backend, model=args.model, base_url=args.base_url, request_timeout=args.request_timeout,
                       concurrency=args.concurrency, seed=args.seed, wrong_rate=args.wrong_rate)


def retry_policy(args: argparse.Namespace):
    from distill.prompting.retry import RetryPolicy

    return RetryPolicy(max_attempts=args.max_attempts, base_delay=args.retry_base, max_delay=args.max_retry_delay)


def source_pairs(args: argparse.Namespace, *, require: bool = True):
    """(task, file) pairs from ``--input`` or by scanning ``--root``."""
    from distill.prompting.pipeline import discover_sources, resolve_datasets

    tasks = resolve_datasets(args.dataset)
    if args.input is not None:
        if len(tasks) != 1:
            raise ConfigError("--input needs exactly one --dataset naming the file's task")
        if not args.input.is_file():
            raise ConfigError(f"--input {args.input}: no such file")
        return [(tasks[0], args.input)]
    return discover_sources(args.root, tasks, include_train=args.include_train, require=require)


def run(args: argparse.Namespace) -> int:
    from distill.prompting.pipeline import PromptSettings, load_sources, run_prompt, resolve_datasets
    from distill.prompting.styles import DEFAULT_STYLES, load_styles_file, parse_styles

    # 1. everything that can be wrong with the flags, before any work
    extra = load_styles_file(args.styles_file) if args.styles_file else []
    if args.styles:
        styles = parse_styles(args.styles)
    elif extra:
        styles = parse_styles(",".join(dict.fromkeys([*DEFAULT_STYLES, *(s.name for s in extra)])))
    else:
        styles = parse_styles(None)
    settings = PromptSettings(model=args.model, n=args.n, styles=tuple(s.name for s in styles),
                              temperature=args.temperature, max_tokens=args.max_tokens,
                              concurrency=args.concurrency, request_timeout=args.request_timeout,
                              retry=retry_policy(args))
    resolve_datasets(args.dataset)
    # 2. the backend (a missing API key stops here, before files are read)
    backend = make_backend(args)
    # 3. read + validate every source, then ask
    try:
        sources = load_sources(source_pairs(args))
    except BaseException:
        import asyncio

        close = getattr(backend, "aclose", None)
        if close is not None:
            asyncio.run(close())
        raise
    report = run_prompt(backend, sources, settings, progress=not args.no_progress)
    print(report.format())
    if args.summary_json:
        from distill.data.jsonl import atomic_write_text

        atomic_write_text(args.summary_json, json.dumps(report.as_dict(), indent=2) + "\n")
    return 1 if report.stats.failed else 0
