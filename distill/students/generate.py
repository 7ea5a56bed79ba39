"""Greedy generation of the students' answers, and the generation budget.

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
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Sequence

import torch

#: The smallest default budget: the longest built-in style (``tot``: two or three approaches,
#: each evaluated, then one followed) measured ~176-205 tokens on the demo's questions with either
#: student's tokenizer (``distill.demo.config.probe_config``); 256 leaves it room to finish and
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
                     synced_gpus: bool = False, progress: Callable[[int], Any] | None = None) -> list[dict[str, Any]]:
    """Greedy answers for chat-formatted prompts, in input order, each
    ``{text, logprob, n_bytes, logprob_per_byte, mean_logprob, n_tokens, hit_budget}``.

    ``logprob`` sums the raw log-probabilities of the generated tokens up to and including the
    stop token; ``mean_logprob`` divides it by ``n_tokens``, ``logprob_per_byte`` by the UTF-8
    bytes of ``text`` (at least 1). ``hit_budget``: the answer used all ``max_new_tokens``
    without a stop token. ``progress(n)`` is called after each batch of ``n`` prompts (a bar's ``update``).
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
                if progress is not None:
                    progress(gen.shape[0])
    finally:
        tok.padding_side = old_side
        model.train(was_training)
    return out


# ------------------------------------------------------------------------- conversations
def render_conversation(tok, messages: list[dict[str, str]]) -> str:
    """A multi-turn conversation as the student's prompt text, ending where its next answer starts:
    rendered exactly as multi-turn training rows are (:func:`distill.students.messages.render`), i.e.
    with the student's chat template, or for a tokenizer without one the plain-text continuation of
    ``chat_prompt``'s form (``question\\nAnswer: answer<eos>\\nfeedback\\nAnswer: ``). A one-turn
    conversation renders exactly as :func:`distill.students.data.chat_prompt`.
    """
    from distill.students.messages import render

    return render(tok, messages, generation_prompt=True)


def conversation_generator(model, tok, *, batch_size: int, max_new_tokens: int, window: int | None = None,
                           desc: str = "refine", enabled: bool = True):
    """``generate(conversations) -> list[str | None]`` for :func:`distill.students.refine.refine_loop`:
    greedy answers (:func:`generate_answers`) to the rendered conversations, with the same budget every
    round; ``None`` for a conversation whose prompt plus budget no longer fits ``window`` tokens."""
    from distill.progress import progress_bar

    calls = [0]

    def generate(conversations: list[list[dict[str, str]]]) -> list[str | None]:
        calls[0] += 1
        prompts = [render_conversation(tok, c) for c in conversations]
        lengths = [len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"]] if prompts else []
        fits = [i for i, n in enumerate(lengths) if window is None or n + max_new_tokens <= window]
        out: list[str | None] = [None] * len(prompts)
        with progress_bar(len(fits), f"{desc} round {calls[0]}", unit="answer", enabled=enabled) as bar:
            answers = generate_answers(model, tok, [prompts[i] for i in fits], batch_size=batch_size,
                                       max_new_tokens=max_new_tokens, progress=bar.update)
        for i, ans in zip(fits, answers):
            out[i] = ans["text"]
        return out

    return generate
