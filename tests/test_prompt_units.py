"""Styles, core prompts, cache keys, the durable cache and the retry policy (no network)."""

from __future__ import annotations

import json
import random

import pytest

from distill.errors import ConfigError, DistillError
from distill.prompting.cache import ResponseCache, cache_key
from distill.prompting.prompts import build_prompt, core_prompt
from distill.prompting.retry import RetryPolicy
from distill.prompting.styles import (
    STYLES, UnknownStyleError, get_style, load_styles_file, parse_styles, register_style,
)


def test_builtin_styles_and_unknown_style_lists_valid_names():
    for name in ("cot", "program", "knowledge", "tot", "fwd_bwd", "plain"):
        assert get_style(name).name == name
    assert [s.name for s in parse_styles("cot,program")] == ["cot", "program"]
    with pytest.raises(UnknownStyleError) as ei:
        parse_styles("cot,socratic")
    assert "socratic" in str(ei.value) and "fwd_bwd" in str(ei.value)


def test_style_templates_validate_and_files_extend_registry(tmp_path):
    with pytest.raises(ConfigError, match="{core}"):
        register_style("broken_style", "no placeholder here")
    f = tmp_path / "styles.yaml"
    f.write_text("socratic_test: \"Ask yourself questions first.\\n{core}\"\n")
    [st] = load_styles_file(f)
    try:
        assert STYLES["socratic_test"] is st
        p = build_prompt("gsm8k", {"id": "1", "question": "What is {x}?", "gold_answer": "1"}, st)
        assert p.startswith("Ask yourself questions first.\nQuestion: What is {x}?")  # braces survive
        assert p.endswith("Put the final answer in \\boxed{}.")
    finally:
        STYLES.pop("socratic_test")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    with pytest.raises(DistillError, match="bad.yaml"):
        load_styles_file(bad)


def test_core_prompts_per_task_kind():
    mcq = {"id": "a", "question": "Pick one", "gold_answer": "B",
           "choices": {"label": ["A", "B"], "text": ["red", "blue"]}}
    p = core_prompt("arc_challenge", mcq)
    assert "(A) red\n(B) blue" in p and p.endswith('"The best answer is [LETTER]" where [LETTER] is one of A, B.')
    assert core_prompt("strategy_qa", {"question": "Is it?"}).endswith('"The answer is No".')
    nli = core_prompt("anli", {"premise": "P.", "hypothesis": "H."})
    assert "Premise: P.\nHypothesis: H." in nli and "Neither" in nli
    tab = core_prompt("table_mwp", {"question": "Mean?", "table": "a | 1\nb | 3", "table_title": "T"})
    assert tab.startswith("Table: T\na | 1\nb | 3\n\nQuestion: Mean?") and tab.endswith("\\boxed{}.")
    assert core_prompt("arith", {"question": "2+2?"}).endswith("\\boxed{}.")
    # every style keeps the format line last, and different styles give different prompts
    row = {"id": "1", "question": "What is 2+2?", "gold_answer": "4"}
    prompts = {s: build_prompt("gsm8k", row, get_style(s)) for s in ("cot", "program", "plain")}
    assert len(set(prompts.values())) == 3
    assert all(p.endswith("Put the final answer in \\boxed{}.") for p in prompts.values())
    assert prompts["plain"] == core_prompt("gsm8k", row)


def test_cache_key_covers_settings():
    base = dict(model="m", prompt="p", style="cot", sample_index=0, temperature=0.7, max_tokens=100)
    k = cache_key(**base)
    assert k == cache_key(**base)
    for change in ({"model": "m2"}, {"prompt": "q"}, {"style": "tot"}, {"sample_index": 1},
                   {"temperature": 0.0}, {"max_tokens": 50}, {"kind": "judge"}):
        assert cache_key(**{**base, **change}) != k, change


def test_cache_is_durable_and_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "x.cache.jsonl"
    c = ResponseCache(path)
    c.add("k1", {"text": "one"})
    # another process sees the record immediately (no buffering), before close
    assert json.loads(path.read_text().splitlines()[0])["text"] == "one"
    c.close()
    with open(path, "ab") as fh:  # a crash mid-write leaves half a line
        fh.write(b'{"key": "k2", "te')
    c2 = ResponseCache(path)
    assert "k1" in c2 and "k2" not in c2 and c2.skipped_lines == 1
    c2.add("k3", {"text": "three"})
    c2.close()
    c3 = ResponseCache(path)
    assert set(c3.records) == {"k1", "k3"} and c3.get("k3")["text"] == "three"


def test_retry_policy_backoff_and_retry_after():
    pol = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=8.0)
    rng = random.Random(0)
    d = [pol.delay(r, None, rng) for r in (1, 2, 3, 4, 5)]
    assert 0.5 <= d[0] <= 1.0 and 1.0 <= d[1] <= 2.0 and 2.0 <= d[2] <= 4.0
    assert all(4.0 <= x <= 8.0 for x in d[3:])  # capped
    assert 3.0 <= pol.delay(1, 3.0, rng) <= 4.0  # Retry-After wins over a shorter backoff
    assert pol.delay(1, 10_000.0, rng) <= pol.max_retry_after + 1.0
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
