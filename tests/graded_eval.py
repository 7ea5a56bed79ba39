"""Agreement of the verifier with the hand-graded cases in tests/data/graded_answers.jsonl.

    .venv/bin/python tests/graded_eval.py [-v]      # prints agreement, false positives/negatives per class
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

CASES = Path(__file__).resolve().parent / "data" / "graded_answers.jsonl"


def load_cases(path: Path = CASES) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def evaluate(cases: list[dict]) -> dict:
    from distill.verify import score

    fp, fn, per_class = [], [], Counter()
    for c in cases:
        v = score(c["task"], c["response"], c["row"])
        if v.correct and not c["grade"]:
            fp.append((c["id"], v.pred))
        elif c["grade"] and not v.correct:
            fn.append((c["id"], v.pred))
        per_class[c["class"], v.correct == c["grade"]] += 1
    n = len(cases)
    return {"n": n, "agreement": (n - len(fp) - len(fn)) / n, "false_positives": fp, "false_negatives": fn,
            "per_class": {k: (per_class[k, True], per_class[k, True] + per_class[k, False])
                          for k in sorted({c["class"] for c in cases})}}


if __name__ == "__main__":
    cases = load_cases()
    for name, part in (("all", cases), *[(b, [c for c in cases if c.get("batch") == b])
                                         for b in sorted({c.get("batch", "main") for c in cases})]):
        res = evaluate(part)
        print(f"[{name}] n={res['n']} agreement={res['agreement']:.3f} "
              f"false positives={len(res['false_positives'])} false negatives={len(res['false_negatives'])}")
        if name == "all":
            for k, (ok, tot) in res["per_class"].items():
                print(f"  {k:22s} {ok}/{tot}")
        if "-v" in sys.argv:
            print("  FP", res["false_positives"])
            print("  FN", res["false_negatives"])
