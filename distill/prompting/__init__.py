"""Teacher prompting: the data engine (``distill prompt``, ``distill judge``).

Modules, one job each:

- :mod:`.styles` -- reasoning-style registry (``cot``, ``program``, ``knowledge``, ``tot``,
  ``fwd_bwd``, ``plain``; extend with ``register_style`` or ``--styles-file``).
- :mod:`.prompts` -- the core prompt per task (answer-format line last).
- :mod:`.backend` -- the protocol every teacher implements; :mod:`.backends` -- the backend
  registry: ``get_backend`` for ``openai`` (any OpenAI-compatible URL), ``gemini`` and plug-ins
  (``register_backend`` or the ``distill.backends`` entry points; the demo's ``scripted`` is one).
- :mod:`.transport` / :mod:`.sources` -- backend and transport options; which source files a run reads.
- :mod:`.cache` -- append-only durable answer cache (``<stem>.cache.jsonl``).
- :mod:`.retry` / :mod:`.limit` / :mod:`.engine` / :mod:`.stats` -- backoff policy, the adaptive (AIMD)
  in-flight limit and the async engine (one global in-flight limit, every fault retried, failures
  recorded, token usage counted); its run statistics and progress line.
- :mod:`.cost` -- prices (flags or a dated table), token usage sums, the ``--max-spend`` cap;
  :mod:`.resample` -- ``--resample-unsolved`` rounds; :mod:`.repair` / :mod:`.repair_rows` --
  ``--repair-rounds`` (formal tasks: a rejected program sent back with the solver's error, its trail
  and repair examples).
- :mod:`.planning` / :mod:`.stages` / :mod:`.summary` -- a ``distill prompt`` run's settings and jobs;
  its preflight and output stages (locks, verification, enriched/correct files); its report.
- :mod:`.pipeline` -- the whole command, ``run_prompting`` (``distill prompt``), from those pieces.
- :mod:`.judge` -- the LLM-as-judge filter writing ``<stem>.judged.jsonl`` (``run_judge``).

The command lines are in :mod:`distill.commands` (``prompt``, ``judge``).

Nothing here imports torch; the SDKs load only when their backend is chosen.
"""
