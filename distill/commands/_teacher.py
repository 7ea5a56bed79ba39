"""Flags shared by ``distill prompt`` and ``distill judge``: sources, backend and transport."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="./data", help="data root holding <task>/<split>.jsonl (default ./data)")
    parser.add_argument("--dataset", default="all",
                        help="task name, comma list, or 'all' (default all)")
    parser.add_argument("--input", type=Path, default=None,
                        help="one file to process instead of scanning --root (needs a single --dataset)")
    parser.add_argument("--include-train", action="store_true", help="also process train files / train/ folders")


def add_transport_arguments(parser: argparse.ArgumentParser, *, default_model: str) -> None:
    from distill.prompting.backends import backend_names

    add_source_arguments(parser)
    parser.add_argument("--backend", default="openai",
                        help=f"{' | '.join(backend_names())} (default openai; more through the distill.backends "
                             "entry points)")
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
    parser.add_argument("--batch-dir", type=Path, default=None,
                        help="openai-batch: folder of the batch state a rerun resumes (default <root>/.openai-batch)")
    parser.add_argument("--batch-poll", type=float, default=30.0,
                        help="openai-batch: seconds between batch status polls (default 30)")
    parser.add_argument("--batch-size", type=int, default=50_000,
                        help="openai-batch: most requests per batch (default 50000, the API's limit)")


def add_cost_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Prices and the spend cap (``distill prompt`` and ``distill judge``); returns the group."""
    cost = parser.add_argument_group("cost control")
    cost.add_argument("--price-in", type=float, default=None, metavar="USD",
                      help="USD per million prompt tokens (with --price-out; default: the built-in table for "
                           "common models, else tokens only)")
    cost.add_argument("--price-out", type=float, default=None, metavar="USD",
                      help="USD per million completion tokens")
    cost.add_argument("--price-cached", type=float, default=None, metavar="USD",
                      help="USD per million prompt tokens served from the provider's prompt cache "
                           "(default: --price-in, or the table's)")
    cost.add_argument("--max-spend", type=float, default=None, metavar="USD",
                      help="stop sending requests before this run's estimated spend would pass USD (needs a price); "
                           "each request reserves its worst case (prompt bytes + --max-tokens)")
    return cost


def cost_options(args: argparse.Namespace) -> dict:
    """The cost flags as keyword arguments of ``run_prompting`` / ``run_judge``."""
    return {"price_in": args.price_in, "price_out": args.price_out, "price_cached": args.price_cached,
            "max_spend": args.max_spend}


def teacher_options(args: argparse.Namespace):
    from distill.prompting.transport import TeacherOptions

    return TeacherOptions(backend=args.backend, model=args.model, base_url=args.base_url,
                          concurrency=args.concurrency, request_timeout=args.request_timeout,
                          max_attempts=args.max_attempts, retry_base=args.retry_base,
                          max_retry_delay=args.max_retry_delay, seed=args.seed, wrong_rate=args.wrong_rate,
                          batch_dir=str(args.batch_dir or (args.input.parent if args.input else Path(args.root))
                                        / ".openai-batch"),
                          batch_poll=args.batch_poll, batch_size=args.batch_size)


def source_selection(args: argparse.Namespace):
    from distill.prompting.sources import SourceSelection

    return SourceSelection(root=args.root, dataset=args.dataset, input=args.input, include_train=args.include_train)
