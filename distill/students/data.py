"""Student prompts, per-student tokenisation of the training paths, and batching.

Each student sees the same path through its **own** tokenizer and chat template; the
label mask is computed from that tokenizer's prompt length *after* truncation, and the
character offsets of completion tokens within the response text are kept so that a
cross-tokenizer peer loss can align the two students token-to-character. The paths
themselves (one example per reasoning path) are read by :mod:`distill.students.paths`; multi-turn
``messages`` rows (loss on assistant turns only) are tokenised by :mod:`distill.students.messages`.
"""

from __future__ import annotations

from typing import Any

import torch

from distill.losses import IGNORE_INDEX
from distill.students.chat import PINNED_DATE, pinned_template_clock


# ------------------------------------------------------------------------------------- prompts
def question_text(task: str, row: dict[str, Any]) -> str:
    """The prompt a student sees for a row: the task's core question (choices, table, answer
    format), without the teacher's reasoning-style wrapper. Same at training and evaluation."""
    from distill.prompting.prompts import core_prompt

    return core_prompt(task, row)


def chat_prompt(tok, question: str) -> str:
    """The student's chat-formatted prompt text, ending where the assistant's answer starts.

    Tokenizers without a chat template (base models) get a plain ``question\\nAnswer: `` form
    preceded by their BOS token, if they have one. The date a template may insert is pinned to
    :data:`PINNED_DATE` (``date_string`` is passed, and ``strftime_now`` reads a frozen clock),
    so training and evaluation prompts are identical on any day.
    """
    if getattr(tok, "chat_template", None):
        with pinned_template_clock():
            return tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                           tokenize=False, date_string=PINNED_DATE.strftime("%d %b %Y"))
    return f"{tok.bos_token or ''}{question}\nAnswer: "


def context_window(model_config) -> int | None:
    """The model's maximum sequence length (``max_position_embeddings`` / ``n_positions``)."""
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(model_config, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


# ------------------------------------------------------------------------------- tokenisation
#: ``encode_path``'s ``truncation`` outcomes: nothing cut; prompt tokens cut (the whole completion
#: kept); the explicit left window cut the start of the completion; the path dropped for this student;
#: a messages row lost its oldest whole exchanges (:mod:`distill.students.messages`).
TRUNCATION_OUTCOMES = ("none", "prompt", "window", "dropped", "turns")


def encode_path(tok, question: str, response: str, max_len: int) -> dict[str, Any]:
    """Tokenise one path for one student.

    ``input_ids = prompt_ids + response_ids + [eos]``; ``labels`` are ``IGNORE_INDEX`` on the prompt;
    ``offsets[t] = (start, end)`` of token t within ``response`` for completion tokens (EOS:
    ``(len, len)``) and ``(-1, -1)`` on prompt tokens. Also returned: ``completion_len`` (response
    tokens + EOS, before any cut) and ``truncation``, one of :data:`TRUNCATION_OUTCOMES`.

    Truncation to ``max_len`` never cuts the final answer or EOS. Why: a path whose end is cut
    teaches the student to reason without ever answering or stopping, silently.

    - Default (the tokenizer's ``truncation_side`` is ``"right"``, Hugging Face's default): the
      prompt is cut first, from its left, keeping a leading BOS (the question's end and the
      assistant header stay). If the completion still does not fit beside the BOS, the path is
      **dropped** for this student: ``input_ids`` hold the (cut) prompt only and every label is
      ``IGNORE_INDEX``, so the path stays in the dataset for the other student and carries no
      loss for this one (:attr:`PathDataset.usable` says which).
    - ``truncation_side == "left"``: an explicit left-truncating *window* (the routing probe's
      student 1): the last ``max_len`` tokens are kept, the prompt goes first and then the start
      of the completion; the answer and EOS always stay, nothing is dropped.
    """
    p_ids = list(tok(chat_prompt(tok, question), add_special_tokens=False)["input_ids"])
    r = tok(response, add_special_tokens=False, return_offsets_mapping=True)
    r_ids, r_off = list(r["input_ids"]), [tuple(o) for o in r["offset_mapping"]]
    eos = tok.eos_token_id
    c_ids = r_ids + [eos]
    c_off = r_off + [(len(response), len(response))]
    n_c = len(c_ids)
    outcome = "none"
    if len(p_ids) + n_c > max_len:
        if getattr(tok, "truncation_side", "right") == "left":
            keep = min(n_c, max_len)
            p_keep = max_len - keep
            p_ids = p_ids[max(0, len(p_ids) - p_keep):] if p_keep else []
            c_ids, c_off = c_ids[n_c - keep:], c_off[n_c - keep:]
            outcome = "window" if keep < n_c else "prompt"
        else:
            head = p_ids[:1] if p_ids and tok.bos_token_id is not None and p_ids[0] == tok.bos_token_id else []
            room = max_len - n_c - len(head)
            if room < 0:  # the completion cannot fit: keep the (cut) prompt, learn nothing from it
                room = max_len - len(head)
                c_ids, c_off = [], []
                outcome = "dropped"
            else:
                outcome = "prompt"
            tail = p_ids[len(head):]
            p_ids = head + (tail[max(0, len(tail) - room):] if room > 0 else [])
    ids = p_ids + c_ids
    labels = [IGNORE_INDEX] * len(p_ids) + c_ids
    offsets = [(-1, -1)] * len(p_ids) + c_off
    return {"input_ids": ids, "labels": labels, "offsets": offsets, "completion_len": n_c, "truncation": outcome}


class PathDataset:
    """The training paths, pre-tokenised once per student (tokenisation is cheap next to training,
    and doing it up front makes lengths known for length-grouped batching).

    An example that carries ``messages`` is a multi-turn row, encoded by
    :func:`distill.students.messages.encode_messages` (loss on assistant turns only); the others by
    :func:`encode_path`. A path whose completion does not fit a student's ``max_len`` is dropped *for that student
    only* (see :func:`encode_path`): it stays in :attr:`examples` so the other student still
    learns it, with ``usable[key][i] = False`` and no labelled token for the student that cannot.
    """

    def __init__(self, examples: list[dict[str, Any]], tokenizers: dict[str, Any], max_lens: dict[str, int]):
        from distill.students.messages import encode_messages

        self.examples = examples
        self.tokenizers = tokenizers
        self.encoded = {k: [encode_messages(tok, ex["messages"], max_lens[k]) if ex.get("messages") else
                            encode_path(tok, ex["question_text"], ex["response"], max_lens[k]) for ex in examples]
                        for k, tok in tokenizers.items()}
        #: per student, per path: can this student learn the path (its completion fits)?
        self.usable = {k: [e["truncation"] != "dropped" for e in enc] for k, enc in self.encoded.items()}
        self.route_emb: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.examples)

    def length(self, i: int) -> int:
        return max(len(enc[i]["input_ids"]) for enc in self.encoded.values())

    def fully_truncated(self) -> dict[str, int]:
        """Per student, how many paths lost every completion token to truncation."""
        return {k: sum(all(l == IGNORE_INDEX for l in e["labels"]) for e in enc) for k, enc in self.encoded.items()}

    def _count(self, outcome: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for key, enc in self.encoded.items():
            per_style: dict[str, int] = {}
            for ex, e in zip(self.examples, enc):
                if e["truncation"] == outcome:
                    style = str(ex.get("style") or "unknown")
                    per_style[style] = per_style.get(style, 0) + 1
            out[key] = dict(sorted(per_style.items()))
        return out

    @property
    def dropped(self) -> dict[str, dict[str, int]]:
        """Per student, per style: paths dropped because their completion does not fit
        (``{"s1": {"tot": 3}, "s2": {}}``)."""
        return self._count("dropped")

    def truncation_report(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{"dropped", "prompt_cut", "window_cut", "turns_cut"}`` -> per student -> per style counts:
        what the training summary records about truncation (``turns_cut``: messages rows that lost
        their oldest exchanges)."""
        return {"dropped": self._count("dropped"), "prompt_cut": self._count("prompt"),
                "window_cut": self._count("window"), "turns_cut": self._count("turns")}

    def completion_lengths(self) -> dict[str, list[int]]:
        """Per student, the full completion length (response tokens + EOS) of every path it can
        learn: what the default evaluation budget is derived from
        (:func:`distill.students.generate.completion_budget`)."""
        return {k: [e["completion_len"] for e, ok in zip(enc, self.usable[k]) if ok] for k, enc in self.encoded.items()}

    def collate(self, indices: list[int]) -> dict[str, Any]:
        """The batch dict: ``{"s1": {...}, "s2": {...}, "meta": {...}, "route_emb": Tensor | None}``.

        Dynamic right padding to the batch's longest sequence per student (no fixed max length).
        ``batch[key]["usable"]`` ([B] bool) is False where the path was dropped for that student.
        """
        batch: dict[str, Any] = {}
        for key, enc in self.encoded.items():
            feats = [enc[i] for i in indices]
            width = max(len(f["input_ids"]) for f in feats)
            pad = self.tokenizers[key].pad_token_id
            ids = torch.full((len(feats), width), pad, dtype=torch.long)
            att = torch.zeros((len(feats), width), dtype=torch.long)
            lab = torch.full((len(feats), width), IGNORE_INDEX, dtype=torch.long)
            off = torch.full((len(feats), width, 2), -1, dtype=torch.long)
            for j, f in enumerate(feats):
                n = len(f["input_ids"])
                ids[j, :n] = torch.tensor(f["input_ids"])
                att[j, :n] = 1
                lab[j, :n] = torch.tensor(f["labels"])
                off[j, :n] = torch.tensor(f["offsets"], dtype=torch.long).view(n, 2)
            usable = torch.tensor([self.usable[key][i] for i in indices], dtype=torch.bool)
            batch[key] = {"input_ids": ids, "attention_mask": att, "labels": lab, "offsets": off, "usable": usable}
        exs = [self.examples[i] for i in indices]
        batch["meta"] = {"ids": [e["id"] for e in exs], "path_idx": [e["path_idx"] for e in exs],
                         "styles": [e["style"] for e in exs], "correct": [e["correct"] for e in exs],
                         "response_texts": [e["response"] for e in exs], "index": list(indices)}
        batch["route_emb"] = self.route_emb[indices] if self.route_emb is not None else None
        return batch


def epoch_batches(lengths: list[int], bs: int, *, seed: int, epoch: int, world: int = 1,
                  multiple: int = 1, group: int = 16) -> list[list[int]]:
    """Length-grouped, seeded batch order for one epoch, identical on every rank.

    Shuffle with ``seed + epoch``; cut into mega-batches of ``group * bs``; sort each by
    length (so batches hold similar lengths and padding stays small); split into batches and
    shuffle the batch order. The list is then extended by wrapping around until its length
    is a multiple of ``world * multiple`` so every rank runs the same number of steps and
    every epoch ends on an optimizer step. Rank ``r`` takes ``batches[r::world]``.
    """
    g = torch.Generator().manual_seed(int(seed) * 1000 + int(epoch))
    perm = torch.randperm(len(lengths), generator=g).tolist()
    batches: list[list[int]] = []
    step = max(1, group * bs)
    for s in range(0, len(perm), step):
        mega = sorted(perm[s:s + step], key=lambda i: -lengths[i])
        batches.extend(mega[j:j + bs] for j in range(0, len(mega), bs))
    order = torch.randperm(len(batches), generator=g).tolist()
    batches = [batches[i] for i in order]
    unit = max(1, world * multiple)
    k = 0
    while len(batches) % unit:
        batches.append(batches[k % len(batches)])
        k += 1
    return batches
