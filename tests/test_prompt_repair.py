"""``distill prompt --repair-rounds K``: a program Z3 rejects goes back to the teacher with Z3's error.

Real components: the ``openai`` client against the local HTTP server of ``fake_openai_server`` (its
responder writes a broken SMT-LIB2 program first and a fixed one once it sees the diagnostic), and the
real Z3 verifier. The responder knows which problem a repair turn is about from the undeclared symbol
named in Z3's message (each problem's broken program uses its own symbol)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai_server import FakeTeacherServer

from distill.commands import main

GOLD = "(declare-const x Int)\n(assert (> x 2))\n(check-sat)"
ROWS = [{"id": "fix", "question": "Q-fix: find an integer x greater than 2.", "gold_answer": GOLD},
        {"id": "twice", "question": "Q-twice: find an integer x greater than 2.", "gold_answer": GOLD},
        {"id": "never", "question": "Q-never: find an integer x greater than 2.", "gold_answer": GOLD},
        {"id": "ok", "question": "Q-ok: find an integer x greater than 2.", "gold_answer": GOLD}]


def broken(symbol: str) -> str:
    return f"(declare-const x Int)\n(assert (> x 2))\n(assert (> {symbol} 0))\n(check-sat)"


def fenced(program: str) -> str:
    return f"Here is the model.\n```smt2\n{program}\n```"


def responder(prompt: str, model: str) -> str:
    """``prompt`` is the last user turn: the task prompt, or a repair turn carrying Z3's error."""
    if "Solver error" in prompt:
        for seen, answer in (("fixme_a", GOLD), ("stuck_b", broken("stuck_b")), ("twice_c", broken("twice_d")),
                             ("twice_d", GOLD)):
            if seen in prompt:
                return fenced(answer)
        return "no idea"
    for q, answer in (("Q-fix", broken("fixme_a")), ("Q-twice", broken("twice_c")), ("Q-never", broken("stuck_b")),
                      ("Q-ok", GOLD)):
        if q in prompt:
            return fenced(answer)
    return "no idea"


def write(root: Path, task: str, rows) -> Path:
    path = root / task / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def prompt(srv: FakeTeacherServer, root: Path, *extra: str) -> int:
    return main(["prompt", "--root", str(root), "--dataset", "smt", "--base-url", srv.url, "--model", "m",
                 "--styles", "cot", "--n", "1", "--no-progress", "--max-attempts", "1", *extra])


@pytest.fixture
def server():
    with FakeTeacherServer(responder=responder) as srv:
        yield srv


def test_repair_rounds_fix_invalid_programs_record_trails_and_examples(tmp_path, server, capsys):
    src = write(tmp_path, "smt", ROWS)
    summary = tmp_path / "s.json"
    assert prompt(server, tmp_path, "--repair-rounds", "3", "--summary-json", str(summary)) == 0
    out = capsys.readouterr().out
    # 4 first answers; repairs: fix 1, twice 2, never 3 (the bound K), ok 0
    assert server.requests == 4 + 1 + 2 + 3
    rows = {r["id"]: r for r in read(src.with_name("test.enriched.jsonl"))}
    assert rows["fix"]["correct_flags"] == [True] and rows["fix"]["valid_flags"] == [True]
    assert "(assert (> x 2))" in rows["fix"]["responses"][0] and "fixme_a" not in rows["fix"]["responses"][0]
    trail = rows["fix"]["repair_trails"][0]
    assert [(s["round"], s["valid"]) for s in trail] == [(0, False), (1, True)]
    assert "unknown constant fixme_a" in trail[0]["diagnostic"] and trail[1]["diagnostic"] is None
    assert trail[0]["program"] == broken("fixme_a") and trail[1]["program"] == GOLD
    assert [s["valid"] for s in rows["twice"]["repair_trails"][0]] == [False, False, True]
    assert rows["twice"]["correct_flags"] == [True]
    never = rows["never"]
    assert [s["valid"] for s in never["repair_trails"][0]] == [False] * 4  # first answer + K=3 rounds
    assert never["correct_flags"] == [False] and never["valid_flags"] == [False]
    assert "stuck_b" in never["diagnostics"][0]
    assert rows["ok"]["repair_trails"] == [[]] and rows["ok"]["correct_flags"] == [True]
    assert {r["id"] for r in read(src.with_name("test.correct.jsonl"))} == {"fix", "twice", "ok"}
    # each (rejected, error, valid) step is a repair example in `distill augment`'s row format
    ex = {e["id"]: e for e in read(src.with_name("test.repairs.jsonl"))}
    assert set(ex) == {"fix#0/repair1", "twice#0/repair2"}
    fix = ex["fix#0/repair1"]
    assert fix["broken"] == broken("fixme_a") and fix["gold_answer"] == GOLD and fix["operator"] == "teacher_repair"
    assert "unknown constant fixme_a" in fix["error"] and fix["question"] == ROWS[0]["question"]
    assert [m["role"] for m in fix["messages"]] == ["system", "user", "assistant"]
    assert fix["error"] in fix["messages"][1]["content"] and GOLD in fix["messages"][2]["content"]
    assert ex["twice#0/repair2"]["broken"] == broken("twice_d")
    # the repair is sent as one conversation: prompt, the teacher's answer, the solver's error
    conv = next(c for c in server.conversations if "fixme_a" in json.dumps(c))
    assert [m["role"] for m in conv] == ["user", "assistant", "user"]
    assert "Q-fix" in conv[0]["content"] and conv[1]["content"] == fenced(broken("fixme_a"))
    assert "unknown constant fixme_a" in conv[2]["content"]
    longest = max(server.conversations, key=len)
    assert len(longest) == 7 and "stuck_b" in longest[-1]["content"]  # round 3 of "never"
    # rounds are counted and billed
    s = json.loads(summary.read_text())
    assert [(r["round"], r["paths"], r["fixed"]) for r in s["repair"]] == [(1, 3, 1), (2, 2, 1), (3, 1, 0)]
    assert s["requests"] == 10 and s["usage"]["this_run"]["answers"] == 10
    assert "round 1: 1/3 now valid" in out and "2 repair example(s)" in out
    # a rerun pays nothing: every round is in the cache, and the outputs are the same
    before = {p.name: p.read_text() for p in src.parent.glob("test.*.jsonl") if "cache" not in p.name}
    assert prompt(server, tmp_path, "--repair-rounds", "3") == 0
    assert server.requests == 10
    assert {p.name: p.read_text() for p in src.parent.glob("test.*.jsonl") if "cache" not in p.name} == before


def test_rounds_are_bounded_and_a_smaller_k_reuses_the_cache(tmp_path, server):
    src = write(tmp_path, "smt", ROWS[2:3])  # "never": never fixed
    assert prompt(server, tmp_path, "--repair-rounds", "1") == 0
    assert server.requests == 2
    [row] = read(src.with_name("test.enriched.jsonl"))
    assert len(row["repair_trails"][0]) == 2 and read(src.with_name("test.repairs.jsonl")) == []
    assert prompt(server, tmp_path, "--repair-rounds", "2") == 0  # round 1 from the cache, round 2 asked
    assert server.requests == 3


def test_repair_rounds_respect_max_spend(tmp_path, server, capsys):
    write(tmp_path, "smt", ROWS[2:3])
    # one first answer fits (its worst case: ~350 prompt bytes + 64 tokens at $1/M in and out); a repair
    # turn, which carries the whole conversation, does not fit in what is left
    rc = prompt(server, tmp_path, "--repair-rounds", "3", "--max-tokens", "64", "--price-in", "1",
                "--price-out", "1", "--max-spend", "0.0006")
    out = capsys.readouterr().out
    assert server.requests == 1 and rc == 1
    assert "spend cap reached" in out and "round 1: 0/1 now valid, 1 not asked" in out


def test_repair_rounds_on_a_task_that_is_not_formal_fail_before_any_request(tmp_path, server, capsys):
    write(tmp_path, "gsm8k", [{"id": "1", "question": "What is 1+1?", "gold_answer": "2"}])
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--base-url", server.url, "--model", "m",
               "--no-progress", "--repair-rounds", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and server.requests == 0
    assert len(err.strip().splitlines()) == 1 and "--repair-rounds" in err and "gsm8k" in err
    assert sorted(p.name for p in (tmp_path / "gsm8k").iterdir()) == ["test.jsonl"]
    assert main(["prompt", "--root", str(tmp_path), "--dataset", "smt", "--base-url", server.url,
                 "--repair-rounds", "-1"]) == 2
    assert "--repair-rounds must be >= 0" in capsys.readouterr().err


def test_gemini_gets_the_conversation_as_turns(tmp_path, server, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    src = write(tmp_path, "smt", ROWS[:1])
    assert main(["prompt", "--root", str(tmp_path), "--dataset", "smt", "--backend", "gemini", "--base-url",
                 server.root_url, "--model", "gemini-x", "--styles", "cot", "--n", "1", "--no-progress",
                 "--max-attempts", "1", "--repair-rounds", "2"]) == 0
    [row] = read(src.with_name("test.enriched.jsonl"))
    assert server.requests == 2 and row["correct_flags"] == [True]  # the server saw Z3's error in the last turn
    assert [s["valid"] for s in row["repair_trails"][0]] == [False, True]


class PromptOnlyTeacher:
    """A plug-in backend that reads only ``Request.prompt`` (as single-prompt backends do)."""

    name = "prompt-only"

    def __init__(self, **_):
        self.prompts: list[str] = []

    async def complete(self, request):
        from distill.prompting.backend import Completion

        self.prompts.append(request.prompt)
        return Completion(responder(request.prompt, "m"), 10, 10, finish_reason="stop")

    async def aclose(self):
        return None


def test_a_backend_that_ignores_messages_gets_the_conversation_in_the_prompt(tmp_path, monkeypatch):
    from distill.prompting import backends

    teacher = PromptOnlyTeacher()
    monkeypatch.setitem(backends.BACKENDS._items, "prompt-only", lambda **_: teacher)  # (removed after the test)
    src = write(tmp_path, "smt", ROWS[:1])
    assert main(["prompt", "--root", str(tmp_path), "--dataset", "smt", "--backend", "prompt-only", "--model", "m",
                 "--styles", "cot", "--n", "1", "--no-progress", "--repair-rounds", "2"]) == 0
    assert len(teacher.prompts) == 2
    first, repair = teacher.prompts
    assert repair.startswith(first) and fenced(broken("fixme_a")) in repair and "unknown constant fixme_a" in repair
    assert read(src.with_name("test.enriched.jsonl"))[0]["correct_flags"] == [True]


def test_batch_backend_sends_each_round_as_a_conversation_in_its_own_batch(tmp_path):
    from fake_batch_server import FakeBatchServer

    src = write(tmp_path, "smt", ROWS[:2])  # "fix" (one round) and "twice" (two rounds)
    with FakeBatchServer(responder=responder) as srv:
        assert prompt(srv, tmp_path, "--backend", "openai-batch", "--batch-poll", "0.05", "--repair-rounds", "3") == 0
        assert srv.batches_created == 3  # first pass, round 1 (both), round 2 ("twice")
        assert sorted(len(b["messages"]) for b in srv.bodies) == [1, 1, 3, 3, 5]
    rows = {r["id"]: r for r in read(src.with_name("test.enriched.jsonl"))}
    assert rows["fix"]["correct_flags"] == rows["twice"]["correct_flags"] == [True]
    assert len(read(src.with_name("test.repairs.jsonl"))) == 2


def test_the_repairs_file_is_an_output_never_a_source_and_trains_as_messages(tmp_path):
    from distill.data.jsonl import is_output_file, stem_of
    from distill.students.paths import _kind

    path = tmp_path / "smt" / "test.repairs.jsonl"
    assert is_output_file(path) and stem_of(path) == "test"  # not scanned as a source, not taken as test data
    assert _kind(path) == "messages"
