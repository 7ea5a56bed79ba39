"""Evaluation of the two students and their confidence-weighted ensemble.

Why "continuation only": the prompt contains the question (and, for MCQ, every option
letter), so scoring the decoded *whole* sequence would credit an answer the model never
generated. Each student generates greedily with left padding; only the tokens after the
prompt are decoded and handed to the task verifier. The ensemble picks, per question,
the student whose own answer has the higher mean token log-probability (length
normalised, so a long answer is not penalised for its length).

Runs on every rank's shard (rows ``r::world``, padded so all ranks run the same number
of ``generate`` calls, which ZeRO-3 requires) and gathers the results.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import torch

from distill.data.jsonl import atomic_write_jsonl, atomic_write_text
from distill.students.data import chat_prompt, question_text


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
    """Greedy answers for chat-formatted prompts: ``[{text, mean_logprob, n_tokens}]`` in input order."""
    was_training = model.training
    model.eval()
    old_side = tok.padding_side
    tok.padding_side = "left"
    device = next(model.parameters()).device
    eos_ids = {tok.eos_token_id} | ({model.generation_config.eos_token_id}
                                    if isinstance(model.generation_config.eos_token_id, int) else set())
    out: list[dict[str, Any]] = []
    try:
        for s in range(0, len(prompts), batch_size):
            enc = tok(prompts[s:s + batch_size], add_special_tokens=False, padding=True, return_tensors="pt").to(device)
            res = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                 return_dict_in_generate=True, output_scores=True, synced_gpus=synced_gpus)
            gen = continuation(res.sequences, enc["input_ids"].shape[1])
            logp = torch.stack([torch.log_softmax(sc.float(), dim=-1) for sc in res.scores], dim=1)
            tok_lp = logp.gather(-1, gen[:, : logp.shape[1]].unsqueeze(-1)).squeeze(-1)
            keep = _until_eos_mask(gen[:, : logp.shape[1]], eos_ids)
            n = keep.sum(dim=1)
            mean_lp = (tok_lp * keep).sum(dim=1) / n.clamp_min(1)
            for j in range(gen.shape[0]):
                ids = gen[j][keep[j].bool()].tolist()
                out.append({"text": tok.decode(ids, skip_special_tokens=True),
                            "mean_logprob": float(mean_lp[j]), "n_tokens": int(n[j])})
    finally:
        tok.padding_side = old_side
        model.train(was_training)
    return out


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


def evaluate(students: list[tuple[Any, Any]], rows: list[dict[str, Any]], task: str, *, accelerator=None,
             eval_bs: int = 8, max_new_tokens: int = 256, scorer: Callable | None = None,
             out_dir: str | Path | None = None, synced_gpus: bool = False) -> tuple[list[dict], dict]:
    """Evaluate one or two ``(model, tokenizer)`` students on ``rows``.

    Returns ``(predictions, metrics)``; with ``out_dir`` the main process also writes
    ``out_dir/predictions.jsonl`` and ``out_dir/metrics.json``. Metrics: ``acc_s1``,
    ``acc_s2``, ``acc_ensemble``, ``acc_oracle`` (either student right), ``agreement``
    (same extracted answer) and ``n``.
    """
    scorer = scorer or default_scorer()
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    n = len(rows)
    per_rank = math.ceil(n / world) if n else 0
    mine = [(i % n) for i in range(rank, per_rank * world, world)] if n else []  # wrap-pad: equal work per rank
    local: list[dict[str, Any]] = [{"index": i} for i in mine]
    for k, (model, tok) in enumerate(students, 1):
        prompts = [chat_prompt(tok, question_text(task, rows[i])) for i in mine]
        answers = generate_answers(model, tok, prompts, batch_size=eval_bs, max_new_tokens=max_new_tokens,
                                   synced_gpus=synced_gpus)
        for rec, ans, i in zip(local, answers, mine):
            pred, ok = _score(scorer, task, ans["text"], rows[i])
            rec[f"s{k}"] = {"text": ans["text"], "pred": pred, "correct": ok, "mean_logprob": ans["mean_logprob"],
                            "n_tokens": ans["n_tokens"]}
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
            pick = 1 if s1["mean_logprob"] >= s2["mean_logprob"] else 2
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
    else:
        metrics.update(acc_s2=None, acc_ensemble=metrics["acc_s1"], acc_oracle=metrics["acc_s1"], agreement=None)
    if out_dir is not None and (accelerator is None or accelerator.is_main_process):
        out = Path(out_dir)
        atomic_write_jsonl(out / "predictions.jsonl", preds)
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return preds, metrics
