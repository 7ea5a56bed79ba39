"""Evaluation of the two students and their confidence-weighted ensemble.

Why "continuation only": the prompt contains the question (and, for MCQ, every option
letter), so scoring the decoded *whole* sequence would credit an answer the model never
generated. Each student generates with left padding; only the tokens after the prompt are
decoded and handed to the task verifier.

Why *pure* greedy with an explicit :class:`~transformers.GenerationConfig`: ``generate`` fills
every unset option from the model's own ``generation_config`` (a checkpoint's
``repetition_penalty``, ``do_sample``, ``top_k``...), so the same student would decode
differently depending on what its folder ships. Evaluation decodes by argmax alone and stops
on EOS or the chat template's end-of-turn token (``<|im_end|>``, ``<|eot_id|>``, ...).

Why the budget is derived from the training data: a fixed ``max_new_tokens`` cuts the long
styles (tree-of-thought) before their answer and scores them wrong. The default budget is
the 99th percentile of each student's training completion lengths, never below
:data:`BUDGET_FLOOR` (:func:`completion_budget`); ``hit_budget_s{k}`` reports the share of
answers that still ran into it.

Why the ensemble compares log-prob *per UTF-8 byte*: a per-token mean favours the student with
the finer tokenizer (more, individually easier tokens for the same text), so with two different
tokenizers the pick would follow segmentation rather than confidence. The summed log-prob of an
answer divided by the bytes of its text scores the *string*, which both students share.

Runs on every rank's shard (rows ``r::world``, padded so all ranks run the same number of
``generate`` calls, which ZeRO-3 requires) and gathers the results.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from distill.data.jsonl import atomic_write_jsonl, atomic_write_text
from distill.errors import ConfigError, DistillError
from distill.students.data import chat_prompt, context_window, question_text

#: The smallest default budget: the longest built-in style (``tot``: two or three approaches,
#: each evaluated, then one followed) measured ~176-205 tokens on the demo's questions with either
#: student's tokenizer (``distill.demo.pipeline.probe_config``); 256 leaves it room to finish and
#: is the budget every run used before budgets were derived from the training data.
BUDGET_FLOOR = 256

#: End-of-turn tokens of common chat templates (ChatML, Llama 3, Phi-3, Gemma, GPT-style). Any of
#: them that the tokenizer has as a special/added token stops generation besides its EOS.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")


# ------------------------------------------------------------------------------------ budget
def completion_budget(lengths: Sequence[int], floor: int = BUDGET_FLOOR, quantile: float = 0.99) -> int:
    """The generation budget for a student: the ``quantile`` (nearest rank) of its training
    completion lengths in tokens (EOS included), never below ``floor``.

    Pure. With no lengths the floor is the budget.
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    if floor < 1:
        raise ValueError(f"floor must be >= 1, got {floor}")
    if not lengths:
        return int(floor)
    ordered = sorted(int(n) for n in lengths)
    rank = max(1, math.ceil(quantile * len(ordered)))
    return max(int(floor), ordered[rank - 1])


def default_budgets(lengths_by_student: dict[str, Sequence[int]], floor: int = BUDGET_FLOOR) -> dict[str, int]:
    """``{"s1": budget, ...}`` from ``PathDataset.completion_lengths()``."""
    return {k: completion_budget(v, floor) for k, v in lengths_by_student.items()}


# -------------------------------------------------------------------------------- decoding
def stop_token_ids(tok, model=None) -> list[int]:
    """EOS, the model's own EOS ids, and every end-of-turn token of :data:`END_OF_TURN_TOKENS`
    that this tokenizer has as a special or added token (an ordinary BPE piece spelled the same
    is not one)."""
    ids: list[int] = []
    if tok.eos_token_id is not None:
        ids.append(int(tok.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.append(gen_eos)
    elif isinstance(gen_eos, (list, tuple)):
        ids.extend(int(e) for e in gen_eos)
    special = set(getattr(tok, "all_special_tokens", [])) | set(tok.get_added_vocab())
    for t in END_OF_TURN_TOKENS:
        if t in special:
            tid = tok.convert_tokens_to_ids(t)
            if isinstance(tid, int) and tid != tok.unk_token_id:
                ids.append(tid)
    return list(dict.fromkeys(ids))


def greedy_config(tok, stop_ids: list[int], max_new_tokens: int):
    """A :class:`GenerationConfig` for argmax decoding with nothing else applied."""
    from transformers import GenerationConfig

    return GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=int(max_new_tokens), min_new_tokens=0,
                            repetition_penalty=1.0, no_repeat_ngram_size=0, eos_token_id=list(stop_ids),
                            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                            return_dict_in_generate=True, output_logits=True, output_scores=False)


@contextlib.contextmanager
def _plain_generation(model, config):
    """Swap ``config`` in for every ``generation_config`` the model (and a PEFT wrapper's inner
    model) holds while generating: ``generate`` fills options the caller left unset from the
    model's own config, so passing a config alone does not stop a checkpoint's
    ``repetition_penalty`` or ``top_k`` from leaking in."""
    owners = [m for m in model.modules() if "generation_config" in vars(m)]
    saved = [m.generation_config for m in owners]
    try:
        for m in owners:
            m.generation_config = config
        yield
    finally:
        for m, old in zip(owners, saved):
            m.generation_config = old


def continuation(sequences: torch.Tensor, prompt_width: int) -> torch.Tensor:
    """The generated part of ``generate``'s output: with left padding every prompt ends at
    column ``prompt_width``, so the continuation is simply what follows it."""
    return sequences[:, prompt_width:]


def _until_eos_mask(gen: torch.Tensor, eos_ids: set[int]) -> torch.Tensor:
    """1 for generated tokens up to and including the first EOS, 0 after it."""
    is_eos = torch.zeros_like(gen, dtype=torch.bool)
    for e in eos_ids:
        is_eos |= gen == e
    after = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # EOS seen strictly before t
    return (after == 0).long()


@torch.no_grad()
def generate_answers(model, tok, prompts: list[str], *, batch_size: int, max_new_tokens: int,
                     synced_gpus: bool = False) -> list[dict[str, Any]]:
    """Greedy answers for chat-formatted prompts, in input order, each
    ``{text, logprob, n_bytes, logprob_per_byte, mean_logprob, n_tokens, hit_budget}``.

    ``logprob`` sums the raw log-probabilities of the generated tokens up to and including the
    stop token; ``mean_logprob`` divides it by ``n_tokens``, ``logprob_per_byte`` by the UTF-8
    bytes of ``text`` (at least 1). ``hit_budget``: the answer used all ``max_new_tokens``
    without a stop token.
    """
    was_training = model.training
    model.eval()
    old_side = tok.padding_side
    tok.padding_side = "left"
    device = next(model.parameters()).device
    stops = stop_token_ids(tok, model)
    config = greedy_config(tok, stops, max_new_tokens)
    out: list[dict[str, Any]] = []
    try:
        with _plain_generation(model, config):
            for s in range(0, len(prompts), batch_size):
                enc = tok(prompts[s:s + batch_size], add_special_tokens=False, padding=True,
                          return_tensors="pt").to(device)
                res = model.generate(**enc, generation_config=config, synced_gpus=synced_gpus)
                steps = len(res.logits)
                gen = continuation(res.sequences, enc["input_ids"].shape[1])[:, :steps]
                tok_lp = torch.stack([torch.log_softmax(lg.float(), dim=-1).gather(-1, gen[:, t:t + 1]).squeeze(-1)
                                      for t, lg in enumerate(res.logits)], dim=1)
                keep = _until_eos_mask(gen, set(stops))
                n = keep.sum(dim=1)
                total = (tok_lp * keep).sum(dim=1)
                has_stop = torch.zeros(gen.shape[0], dtype=torch.bool, device=gen.device)
                for e in stops:
                    has_stop |= (gen == e).any(dim=1)
                for j in range(gen.shape[0]):
                    ids = gen[j][keep[j].bool()].tolist()
                    text = tok.decode(ids, skip_special_tokens=True)
                    n_bytes = len(text.encode("utf-8"))
                    lp = float(total[j])
                    out.append({"text": text, "logprob": lp, "n_bytes": n_bytes,
                                "logprob_per_byte": lp / max(1, n_bytes), "mean_logprob": lp / max(1, int(n[j])),
                                "n_tokens": int(n[j]),
                                "hit_budget": bool(not has_stop[j] and int(n[j]) >= max_new_tokens)})
    finally:
        tok.padding_side = old_side
        model.train(was_training)
    return out


# ------------------------------------------------------------------------------- scoring
def ensemble_pick(a: dict[str, Any], b: dict[str, Any]) -> int:
    """1 or 2: the student whose answer has the higher log-prob per UTF-8 byte (ties: 1).

    Tokenizer-independent: both students' scores are log-probabilities of a string divided by
    the length of that string, not by how finely each tokenizer happened to cut it.
    """
    return 1 if a["logprob_per_byte"] >= b["logprob_per_byte"] else 2


def _score(scorer: Callable, task: str, text: str, row: dict[str, Any]) -> tuple[Any, bool]:
    res = scorer(task, text, row)
    if isinstance(res, bool):
        return None, res
    return getattr(res, "pred", None), bool(getattr(res, "correct", False))


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
             out_dir: str | Path | None = None, synced_gpus: bool = False) -> tuple[list[dict], dict]:
    """Evaluate one or two ``(model, tokenizer)`` students on ``rows``.

    ``max_new_tokens``: one budget for all students, one per student (e.g. from
    :func:`default_budgets`), or ``None`` for :data:`BUDGET_FLOOR`. A budget is lowered to what
    the model's context window leaves after the longest prompt (the same on every rank).

    Returns ``(predictions, metrics)``; with ``out_dir`` the main process also writes
    ``out_dir/predictions.jsonl`` and ``out_dir/metrics.json``. Metrics: ``acc_s1``, ``acc_s2``,
    ``acc_ensemble`` (pick by :func:`ensemble_pick`), ``acc_oracle`` (either student right),
    ``acc_best_single``, ``agreement`` (same extracted answer), ``hit_budget_s{k}`` (share of
    answers that used the whole budget without stopping), ``budget_s{k}`` and ``n``.
    """
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
        answers = generate_answers(model, tok, [prompts_all[i] for i in mine], batch_size=eval_bs,
                                   max_new_tokens=budgets[k - 1], synced_gpus=synced_gpus)
        for rec, ans, i in zip(local, answers, mine):
            pred, ok = _score(scorer, task, ans["text"], rows[i])
            rec[f"s{k}"] = {**ans, "pred": pred, "correct": ok}
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
    metrics["ensemble_rule"] = "logprob_per_byte"
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

    from distill.students.data import load_train_paths
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


def evaluate_run(run_dir: str | Path, task: str, test_file: str | Path, *, eval_bs: int = 8,
                 max_new_tokens: int | None = None, limit: int | None = None,
                 out_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate a finished run's students (``RUN/student1``, ``RUN/student2``) and their ensemble.

    Each student loads as it was trained (:func:`distill.students.load.load_trained_student`:
    4/8-bit base per ``train_config.json``), the budget is ``max_new_tokens`` or
    :func:`run_budgets`, and the evaluation is the end-of-training one (:func:`evaluate`),
    writing ``out_dir`` (default ``RUN/eval``). Under ``accelerate launch`` every rank evaluates
    its shard and the results are gathered. Returns the metrics.
    """
    from accelerate import PartialState

    from distill.data.jsonl import read_rows
    from distill.data.tasks import get_task
    from distill.students.load import load_trained_student

    get_task(task)
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
    students = [load_trained_student(f, device_index=dev_idx, device=state.device) for f in folders]
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

    _, metrics = evaluate(students, rows, task, accelerator=_Shard(), eval_bs=eval_bs, max_new_tokens=budgets,
                          out_dir=Path(out_dir) if out_dir else run_dir / "eval")
    return metrics
