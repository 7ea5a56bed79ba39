"""Evaluation of the two students and their confidence-weighted ensemble.

The answers come from :func:`distill.students.generate.generate_answers` (greedy, continuation
only, within a per-student budget); here they are scored by the task verifier and compared.

Why the ensemble compares log-prob *per UTF-8 byte*: a per-token mean favours the student with
the finer tokenizer (more, individually easier tokens for the same text), so with two different
tokenizers the pick would follow segmentation rather than confidence. The summed log-prob of an
answer divided by the bytes of its text scores the *string*, which both students share.

Runs on every rank's shard (rows ``r::world``, padded so all ranks run the same number of
``generate`` calls, which ZeRO-3 requires) and gathers the results.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from distill.data.jsonl import atomic_write_jsonl, atomic_write_text
from distill.errors import ConfigError, DistillError
from distill.students.data import chat_prompt, context_window, question_text
from distill.progress import progress_bar
from distill.students.eval_rows import table_rows
from distill.students.generate import BUDGET_FLOOR, conversation_generator, default_budgets, generate_answers


# ------------------------------------------------------------------------------- scoring
def ensemble_pick(a: dict[str, Any], b: dict[str, Any]) -> int:
    """1 or 2: the student whose answer has the higher log-prob per UTF-8 byte (ties: 1).

    Tokenizer-independent: both students' scores are log-probabilities of a string divided by
    the length of that string, not by how finely each tokenizer happened to cut it.
    """
    return 1 if a["logprob_per_byte"] >= b["logprob_per_byte"] else 2


def _score(scorer: Callable, task: str, text: str, row: dict[str, Any]) -> tuple[Any, bool, dict[str, Any]]:
    """``(pred, correct, extra)``; ``extra`` holds a formal task's ``valid`` and ``diagnostic``."""
    res = scorer(task, text, row)
    if isinstance(res, bool):
        return None, res, {}
    valid = getattr(res, "valid", None)
    extra = {} if valid is None else {"valid": bool(valid), "diagnostic": getattr(res, "diagnostic", None),
                                      "timed_out": bool(getattr(res, "timed_out", False))}
    return getattr(res, "pred", None), bool(getattr(res, "correct", False)), extra


def default_scorer() -> Callable:
    try:
        from distill.verify import score
    except ImportError as exc:
        raise ImportError("evaluation needs distill.verify.score(task, text, row) (the verifier package)") from exc
    return score


def _budgets(max_new_tokens: int | Sequence[int] | None, n: int) -> list[int]:
    if max_new_tokens is None:
        return [BUDGET_FLOOR] * n
    if isinstance(max_new_tokens, int):
        return [max_new_tokens] * n
    b = [int(x) for x in max_new_tokens]
    if len(b) != n:
        raise ConfigError(f"max_new_tokens: {len(b)} budgets for {n} students")
    return b


def evaluate(students: list[tuple[Any, Any]], rows: list[dict[str, Any]], task: str, *, accelerator=None,
             eval_bs: int = 8, max_new_tokens: int | Sequence[int] | None = None, scorer: Callable | None = None,
             out_dir: str | Path | None = None, synced_gpus: bool = False, template_repair: bool = False,
             refine: int = 0, refine_on: str = "invalid", progress: bool = True,
             row_name: str = "distilled") -> tuple[list[dict], dict]:
    """Evaluate one or two ``(model, tokenizer)`` students on ``rows``.

    ``max_new_tokens``: one budget for all students, one per student (e.g. from
    :func:`default_budgets`), or ``None`` for :data:`BUDGET_FLOOR`. A budget is lowered to what
    the model's context window leaves after the longest prompt (the same on every rank).

    Returns ``(predictions, metrics)``; with ``out_dir`` the main process also writes
    ``out_dir/predictions.jsonl`` and ``out_dir/metrics.json``. Metrics: ``acc_s1``, ``acc_s2``,
    ``acc_ensemble`` (pick by :func:`ensemble_pick`), ``acc_oracle`` (either student right),
    ``acc_best_single``, ``agreement`` (same extracted answer), ``hit_budget_s{k}`` (share of
    answers that used the whole budget without stopping), ``budget_s{k}`` and ``n``; for formal tasks
    (``smt``, ``asp``, ``dot``) also ``valid_s{k}`` (share of programs the solver accepts), and each
    prediction carries ``valid``, ``diagnostic`` and ``timed_out``, and the fields of
    :mod:`distill.students.formal_eval` (``template_repair``: the repaired program's verdict;
    ``refine``: up to that many solver-in-the-loop rounds, ``refine_on`` ``invalid`` or ``wrong``);
    ``metrics["table"]`` holds the rows of :func:`distill.students.eval_rows.table_rows` (the plain one
    named ``row_name``: ``distilled``, or ``base`` for untrained students).
    ``progress``: a bar per student and refinement round (main process only).
    """
    from distill.students.formal_eval import add_formal_fields, check_formal_options

    formal = check_formal_options(task, refine=refine, refine_on=refine_on, template_repair=template_repair)
    if refine and synced_gpus:
        raise ConfigError("--refine: not under ZeRO-3 (ranks would run different numbers of generate calls)")
    scorer = scorer or default_scorer()
    budgets = _budgets(max_new_tokens, len(students))
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    n = len(rows)
    per_rank = math.ceil(n / world) if n else 0
    mine = [(i % n) for i in range(rank, per_rank * world, world)] if n else []  # wrap-pad: equal work per rank
    local: list[dict[str, Any]] = [{"index": i} for i in mine]
    for k, (model, tok) in enumerate(students, 1):
        prompts_all = [chat_prompt(tok, question_text(task, row)) for row in rows]
        window = context_window(model.config)
        if window is not None and prompts_all:
            longest = max(len(ids) for ids in tok(prompts_all, add_special_tokens=False)["input_ids"])
            budgets[k - 1] = max(1, min(budgets[k - 1], window - longest))
        main = accelerator is None or accelerator.is_main_process
        with progress_bar(len(mine), f"eval s{k}", unit="answer", enabled=progress and main) as bar:
            answers = generate_answers(model, tok, [prompts_all[i] for i in mine], batch_size=eval_bs,
                                       max_new_tokens=budgets[k - 1], synced_gpus=synced_gpus, progress=bar.update)
        for rec, ans, i in zip(local, answers, mine):
            pred, ok, extra = _score(scorer, task, ans["text"], rows[i])
            rec[f"s{k}"] = {**ans, "pred": pred, "correct": ok, **extra}
        if formal:
            gen = conversation_generator(model, tok, batch_size=eval_bs, max_new_tokens=budgets[k - 1],
                                         window=window, desc=f"refine s{k}", enabled=progress and main)
            add_formal_fields(task, [rec[f"s{k}"] for rec in local], [rows[i] for i in mine],
                              questions=[question_text(task, rows[i]) for i in mine], generate=gen, rounds=refine,
                              refine_on=refine_on, template_repair=template_repair, scorer=scorer)
    if accelerator is not None and world > 1:
        from accelerate.utils import gather_object

        local = gather_object(local)
    by_index: dict[int, dict[str, Any]] = {}
    for rec in local:
        by_index.setdefault(rec["index"], rec)
    preds: list[dict[str, Any]] = []
    for i in sorted(by_index):
        rec = by_index[i]
        row = rows[i]
        item = {"id": row.get("id"), "gold_answer": row.get("gold_answer"), **{k: v for k, v in rec.items() if k != "index"}}
        if len(students) == 2:
            s1, s2 = rec["s1"], rec["s2"]
            pick = ensemble_pick(s1, s2)
            item["ensemble"] = {"pick": pick, "correct": rec[f"s{pick}"]["correct"]}
            same_pred = (s1["pred"] == s2["pred"]) if s1["pred"] is not None else (s1["text"].strip() == s2["text"].strip())
            item["agree"] = bool(same_pred)
        preds.append(item)
    m = len(preds)

    def rate(f) -> float:
        return sum(1 for p in preds if f(p)) / m if m else 0.0

    metrics: dict[str, Any] = {"n": m, "acc_s1": rate(lambda p: p["s1"]["correct"])}
    if len(students) == 2:
        metrics.update(acc_s2=rate(lambda p: p["s2"]["correct"]), acc_ensemble=rate(lambda p: p["ensemble"]["correct"]),
                       acc_oracle=rate(lambda p: p["s1"]["correct"] or p["s2"]["correct"]),
                       agreement=rate(lambda p: p["agree"]))
        metrics["acc_best_single"] = max(metrics["acc_s1"], metrics["acc_s2"])
    else:
        metrics.update(acc_s2=None, acc_ensemble=metrics["acc_s1"], acc_oracle=metrics["acc_s1"],
                       acc_best_single=metrics["acc_s1"], agreement=None)
    for k in range(1, 3):
        on = k <= len(students)
        metrics[f"hit_budget_s{k}"] = rate(lambda p, k=k: p[f"s{k}"]["hit_budget"]) if on else None
        metrics[f"budget_s{k}"] = budgets[k - 1] if on else None
    if preds and all("valid" in p["s1"] for p in preds):  # formal tasks: share of programs the solver accepts
        for k in range(1, 3):
            metrics[f"valid_s{k}"] = rate(lambda p, k=k: p[f"s{k}"]["valid"]) if k <= len(students) else None
    metrics["ensemble_rule"] = "logprob_per_byte"
    metrics["table"] = table_rows(preds, n_students=len(students), first=row_name, refine=refine,
                                  refine_on=refine_on, template_repair=template_repair)
    if out_dir is not None and (accelerator is None or accelerator.is_main_process):
        out = Path(out_dir)
        atomic_write_jsonl(out / "predictions.jsonl", preds)
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return preds, metrics


# ------------------------------------------------------------------------- a trained run
def run_budgets(run_dir: str | Path, tokenizers: dict[str, Any],
                floor: int = BUDGET_FLOOR) -> tuple[dict[str, int], str]:
    """Default budgets for a finished run, and where they came from.

    In order: ``train_summary.json``'s ``eval_budget`` (what training used); else recomputed from
    the run's training paths (``train_config.json``) with each student's tokenizer; else ``floor``.
    """
    from types import SimpleNamespace

    from distill.students.paths import load_train_paths
    from distill.students.load import read_run_config

    run_dir = Path(run_dir)
    summary_file = run_dir / "train_summary.json"
    if summary_file.is_file():
        saved = json.loads(summary_file.read_text()).get("eval_budget") or {}
        if all(isinstance(saved.get(k), int) for k in tokenizers):
            return {k: int(saved[k]) for k in tokenizers}, str(summary_file)
    settings = read_run_config(run_dir)
    if settings:
        try:
            paths = load_train_paths(SimpleNamespace(**{"train_file": None, "data_root": "./data", "judged_only": False,
                                                        "is_quality": True, "sample_size": None, **settings}))
        except (DistillError, OSError):
            paths = []
        if paths:
            responses = [p["response"] for p in paths]
            lengths = {k: [len(ids) + 1 for ids in tok(responses, add_special_tokens=False)["input_ids"]]
                       for k, tok in tokenizers.items()}
            return default_budgets(lengths, floor), "the run's training paths"
    return {k: int(floor) for k in tokenizers}, "the floor (no train_summary.json budget or training data found)"


def load_base_student(folder: str | Path, *, device_index: int | None = None, device=None):
    """A trained student's *untrained* self: the base of its adapter (``adapter_config.json``), quantised as
    the run's ``train_config.json`` says, with the student's saved tokenizer (so the prompts are the
    trained student's) and no adapter, in eval mode. Returns ``(model, tokenizer)``."""
    from distill.students.load import load_trained_student

    return load_trained_student(folder, device_index=device_index, device=device, adapter=False)


def evaluate_run(run_dir: str | Path, task: str, test_file: str | Path, *, eval_bs: int = 8,
                 max_new_tokens: int | None = None, limit: int | None = None,
                 out_dir: str | Path | None = None, log: Callable[[str], None] | None = None,
                 base: bool = False, template_repair: bool = False, refine: int = 0,
                 refine_on: str = "invalid", progress: bool = True) -> dict[str, Any]:
    """Evaluate a finished run's students (``RUN/student1``, ``RUN/student2``) and their ensemble.

    Each student loads as it was trained (:func:`distill.students.load.load_trained_student`:
    4/8-bit base per ``train_config.json``), the budget is ``max_new_tokens`` or
    :func:`run_budgets`, and the evaluation is the end-of-training one (:func:`evaluate`),
    writing ``out_dir`` (default ``RUN/eval``). Under ``accelerate launch`` every rank evaluates
    its shard and the results are gathered. Returns the metrics.

    ``base``: the untrained students instead (:func:`load_base_student`, same prompts and budgets;
    default ``out_dir`` ``RUN/eval/base``, the table's first row). ``template_repair``, ``refine``,
    ``refine_on``: the formal-task rows (:mod:`distill.students.formal_eval`); a one-line
    :class:`ConfigError` for any other task.
    """
    from accelerate import PartialState

    from distill.data.jsonl import read_rows
    from distill.data.tasks import get_task
    from distill.students.formal_eval import check_formal_options
    from distill.students.load import load_trained_student

    get_task(task)
    check_formal_options(task, refine=refine, refine_on=refine_on, template_repair=template_repair)
    run_dir = Path(run_dir)
    test = Path(test_file)
    if not test.is_file():
        raise ConfigError(f"--test {test}: no such file")
    folders = [run_dir / name for name in ("student1", "student2") if (run_dir / name).is_dir()]
    if not folders:
        raise ConfigError(f"--run {run_dir}: no student1/ or student2/ folder")
    rows = read_rows(test, task)
    rows = rows[:limit] if limit else rows
    state = PartialState()
    dev_idx = state.local_process_index if torch.cuda.is_available() else None
    load = load_base_student if base else load_trained_student
    students = [load(f, device_index=dev_idx, device=state.device) for f in folders]
    if max_new_tokens is not None:
        budgets = [int(max_new_tokens)] * len(students)
    else:
        by_key, source = run_budgets(run_dir, {f"s{k}": tok for k, (_, tok) in enumerate(students, 1)})
        budgets = [by_key[f"s{k}"] for k in range(1, len(students) + 1)]
        if log is not None and state.is_main_process:
            log(f"generation budget {budgets} from {source}")

    class _Shard:  # the slice of Accelerator that evaluate() uses
        num_processes = state.num_processes
        process_index = state.process_index
        is_main_process = state.is_main_process

    default_out = run_dir / "eval" / "base" if base else run_dir / "eval"
    _, metrics = evaluate(students, rows, task, accelerator=_Shard(), eval_bs=eval_bs, max_new_tokens=budgets,
                          out_dir=Path(out_dir) if out_dir else default_out, template_repair=template_repair,
                          refine=refine, refine_on=refine_on, progress=progress, row_name="base" if base else "distilled")
    return metrics
