"""``distill judge``: the LLM-as-judge filter over correct paths, real client, local server."""

from __future__ import annotations

import json

from fake_openai_server import FakeTeacherServer

from distill.commands import main
from distill.prompting.judge import parse_verdict

ROWS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": str(2 * i)} for i in range(4)]


def responder(prompt: str, model: str) -> str:
    if "Proposed solution:" in prompt:  # the judge
        if "What is 1 plus" in prompt:
            return "Step two doubles instead of adding.\nVerdict: UNSOUND"
        if "What is 2 plus" in prompt:
            return "Looks fine to me."  # no verdict line -> dropped
        return "Each step is valid.\n**Verdict:** SOUND"
    q = prompt.split("Question: ", 1)[1].split("\n", 1)[0]
    i = int(q.split()[2])
    ans = 2 * i + (1 if "Python program" in prompt else 0)
    return f"{i} plus {i} is {ans}. \\boxed{{{ans}}}"


def test_parse_verdict():
    assert parse_verdict("blah\nVerdict: SOUND") is True
    assert parse_verdict("Verdict: sound ... on reflection, Verdict: UNSOUND") is False
    assert parse_verdict("**Verdict**: Sound.") is True
    assert parse_verdict("I think it is sound.") is None


def test_judge_keeps_only_sound_correct_paths(tmp_path, capsys):
    src = tmp_path / "gsm8k" / "test.jsonl"
    src.parent.mkdir(parents=True)
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    with FakeTeacherServer(responder=responder, faults=[("3 plus 3 is 6.", ["500"] * 2)]) as srv:
        common = ["--root", str(tmp_path), "--dataset", "gsm8k", "--base-url", srv.url, "--no-progress",
                  "--retry-base", "0.01"]
        assert main(["prompt", *common, "--n", "2", "--styles", "cot,program"]) == 0
        asked = srv.requests
        assert asked == 8
        # judge: only the 4 correct (cot) paths are judged; q3's judge call fails twice -> dropped + reported
        rc = main(["judge", *common, "--model", "judge-m", "--max-attempts", "2"])
        out = capsys.readouterr().out
        assert rc == 1 and srv.requests == asked + 5
        assert "kept 1, rejected 1, no verdict 1, failed 1" in out and "q3#0" in out
        judged = [json.loads(x) for x in (src.with_name("test.judged.jsonl")).read_text().splitlines()]
        assert [r["id"] for r in judged] == ["q0", "q1", "q2", "q3"]
        assert judged[0]["path_idx"] == [0] and judged[0]["styles"] == ["cot"] and judged[0]["preds"] == ["0"]
        assert "SOUND" in judged[0]["judge_responses"][0]
        assert all(r["path_idx"] == [] for r in judged[1:])
        # rerun: cached verdicts are not re-asked; only the failed one is, and now succeeds
        rc = main(["judge", *common, "--model", "judge-m"])
        assert rc == 0 and srv.requests == asked + 5 + 1
        judged = [json.loads(x) for x in (src.with_name("test.judged.jsonl")).read_text().splitlines()]
        assert judged[3]["path_idx"] == [0]


def _prompted(tmp_path, srv) -> tuple[list[str], "object"]:
    src = tmp_path / "gsm8k" / "test.jsonl"
    src.parent.mkdir(parents=True)
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    common = ["--root", str(tmp_path), "--dataset", "gsm8k", "--base-url", srv.url, "--no-progress",
              "--retry-base", "0.01"]
    assert main(["prompt", *common, "--n", "1", "--styles", "cot"]) == 0
    return common, src


def test_judge_refuses_while_another_run_holds_the_source(tmp_path, capsys):
    """A judge run and a prompt run (which rewrites the enriched file judged) exclude each other."""
    from distill.data.commit import SourceLock

    with FakeTeacherServer(responder=responder) as srv:
        common, src = _prompted(tmp_path, srv)
        asked = srv.requests
        lock = SourceLock(src, purpose="prompt")
        try:
            capsys.readouterr()
            assert main(["judge", *common, "--model", "judge-m"]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "another run holds" in err[0], err
            assert srv.requests == asked and not src.with_name("test.judged.jsonl").exists()
        finally:
            lock.release()
        assert main(["judge", *common, "--model", "judge-m"]) == 0  # negative control: free again -> runs
        assert srv.requests == asked + 4


def test_judge_checks_its_outputs_are_writable_before_asking(tmp_path, capsys):
    """A folder where the judged file must go: one line, exit 2, not one paid request."""
    with FakeTeacherServer(responder=responder) as srv:
        common, src = _prompted(tmp_path, srv)
        asked = srv.requests
        src.with_name("test.judged.jsonl").mkdir()
        capsys.readouterr()
        assert main(["judge", *common, "--model", "judge-m"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "test.judged.jsonl" in err[0], err
        assert srv.requests == asked


def test_judge_counts_cost_and_stops_at_max_spend(tmp_path, capsys):
    """The judge's spend is controlled like the teacher's: prices, cost line, --max-spend (issue 16)."""
    with FakeTeacherServer(responder=responder) as srv:
        common, src = _prompted(tmp_path, srv)
        asked = srv.requests
        # no price for this model: --max-spend is refused in one line before any request
        assert main(["judge", *common, "--model", "judge-m", "--max-spend", "1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--max-spend needs prices" in err and srv.requests == asked
        # worst case per request: 100 completion tokens at $100/M = $0.01; the cap fits one request only
        summary = tmp_path / "judge.json"
        rc = main(["judge", *common, "--model", "judge-m", "--max-tokens", "100", "--price-in", "0",
                   "--price-out", "100", "--max-spend", "0.0105", "--summary-json", str(summary)])
        out = capsys.readouterr().out
        assert rc == 1 and srv.requests == asked + 1
        assert "not asked 3" in out and "spend cap reached" in out and "cost: $0.0" in out
        s = json.loads(summary.read_text())
        assert s["not_asked_paths"] == 3 and s["max_spend"]["reached"] is True
        assert s["usage"]["this_run"]["answers"] == 1 and s["usage"]["this_run"]["cost_usd"] > 0
        assert s["prices"]["output_per_mtok"] == 100
        # a rerun with room judges only the three not asked (the first verdict is in the cache)
        rc = main(["judge", *common, "--model", "judge-m", "--max-tokens", "100", "--price-in", "0",
                   "--price-out", "100", "--max-spend", "1"])
        out = capsys.readouterr().out
        assert rc == 0 and srv.requests == asked + 4 and "from cache (1 answers)" in out
        # a model in the price table needs no flags
        assert main(["judge", *common, "--model", "gpt-4o-mini"]) == 0
        assert "table: gpt-4o-mini" in capsys.readouterr().out
