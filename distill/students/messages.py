"""Multi-turn training rows: ``messages`` (system / user / assistant turns) rendered with each
student's own chat template, the loss on assistant turns only.

**How assistant tokens are found: by rendering prefixes**, not ``return_assistant_tokens_mask``.
Why: that mask needs a template with ``{% generation %}`` markers, which the tiny test templates and
most hub templates lack. For assistant turn ``i`` the text before it is ``render(messages[:i],
add_generation_prompt=True)`` (so the assistant header is context, as at generation time) and the
turn is what ``render(messages[:i + 1])`` adds to that. Each context and each turn segment is
tokenised on its own, as the prompt and the completion are for single-turn rows (and as generation
sees them: the prompt is tokenised, the answer is generated token by token). A template whose
prefixes do not render as prefixes of the whole conversation is a one-line :class:`ConfigError`.

Inside a turn segment the labelled tokens run up to and including the first EOS token; what the
template writes after it (ChatML's ``\\n``) is context. A template that closes an assistant turn
without EOS gets EOS appended (labelled), as :func:`~distill.students.data.encode_path` does, so
the student learns to stop. A tokenizer without a chat template renders with
:data:`FALLBACK_TEMPLATE` (the plain ``question\\nAnswer: `` form of ``chat_prompt``).

**Peer alignment.** Offsets of labelled tokens index one *shared response text*, the same for both
students: the assistant contents joined by :data:`TURN_SEP` (:func:`messages_texts`). A token of a
turn gets its character span inside that turn's content (clipped to it), shifted to where the
content sits in the shared text; template tokens (EOS, headers a turn segment may hold) get empty
spans, which never align. So the cross-tokenizer peer loss pairs tokens of the same assistant text
exactly as on single-turn rows. If a template rewrites the content (e.g. trims it) so that it is
not found verbatim, that turn's tokens get empty spans: no peer pairs on it, the NLL is unchanged.

**Truncation keeps whole turns.** A row longer than ``max_len`` loses its oldest *exchanges* (a
user turn and the assistant turns that answer it), never part of a turn; the system turn always
stays. If even the system turn plus the last exchange does not fit, the row is **dropped** for this
student (every label ``IGNORE_INDEX``, outcome ``"dropped"``), like a single-turn path whose answer
does not fit: never a cut turn. ``truncation_side`` does not apply to messages rows.
"""

from __future__ import annotations

from typing import Any

from distill.data.jsonl import DataError
from distill.errors import ConfigError
from distill.losses import IGNORE_INDEX
from distill.students.chat import PINNED_DATE, pinned_template_clock

ROLES = ("system", "user", "assistant")
#: between assistant contents in the shared response text (router text, peer offsets)
TURN_SEP = "\n"
#: for tokenizers without a chat template: the plain form of :func:`distill.students.data.chat_prompt`
FALLBACK_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}Answer: {{ m['content'] }}"
    "{{ eos_token }}\n{% else %}{{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Answer: {% endif %}")


def check_messages(messages: Any, file, lineno: int) -> list[dict[str, str]]:
    """The row's ``messages`` field, checked: a list of ``{"role", "content"}`` with roles from
    :data:`ROLES`, string contents, a system turn only first, a user turn before the first assistant
    turn, non-blank assistant contents, and an assistant turn last (nothing is learned after it)."""
    if not isinstance(messages, list) or not messages:
        raise DataError(file, lineno, "field 'messages' must be a non-empty list of {role, content} turns")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DataError(file, lineno, f"field 'messages'[{i}] must be {{\"role\": system|user|assistant, "
                                          f"\"content\": string}}, got {str(m)[:80]!r}")
        if m["role"] == "system" and i:
            raise DataError(file, lineno, f"field 'messages'[{i}]: a system turn may only come first")
        if m["role"] == "assistant" and not m["content"].strip():
            raise DataError(file, lineno, f"field 'messages'[{i}]: blank assistant turn")
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        raise DataError(file, lineno, "field 'messages' has no assistant turn (nothing to learn)")
    if "user" not in roles[:roles.index("assistant")]:
        raise DataError(file, lineno, "field 'messages': the first assistant turn must follow a user turn")
    if roles[-1] != "assistant":
        raise DataError(file, lineno, f"field 'messages' ends with a {roles[-1]} turn: the last turn must be "
                                      "an assistant turn (nothing is learned after it)")
    for i, m in enumerate(messages):  # OpenAI fine-tuning's per-turn "weight": 0 = context, not learned
        if m.get("weight", 1) not in (0, 1) or (m.get("weight") == 0 and m["role"] != "assistant"):
            raise DataError(file, lineno, f"field 'messages'[{i}]: 'weight' must be 0 or 1, on an assistant turn")
    return [{"role": m["role"], "content": m["content"], **({"weight": 0} if m.get("weight") == 0 else {})}
            for m in messages]


def messages_texts(messages: list[dict[str, str]]) -> tuple[str, str]:
    """``(question_text, response)`` of a messages row: the user turns, and the shared response text
    (assistant contents joined by :data:`TURN_SEP`). The router embeds these two, as it embeds a
    single-turn path's question and response."""
    user = "\n".join(m["content"] for m in messages if m["role"] == "user")
    return user, TURN_SEP.join(m["content"] for m in messages if m["role"] == "assistant")


def render(tok, messages: list[dict[str, str]], *, generation_prompt: bool = False) -> str:
    """The chat-template text of ``messages`` (date pinned as in ``chat_prompt``)."""
    extra = {} if getattr(tok, "chat_template", None) else {"chat_template": FALLBACK_TEMPLATE}
    with pinned_template_clock():
        return tok.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False,
                                       date_string=PINNED_DATE.strftime("%d %b %Y"), **extra)


def _content_bases(messages: list[dict[str, str]]) -> dict[int, int]:
    """message index -> where its content starts in the shared response text."""
    bases, pos = {}, 0
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            bases[i] = pos
            pos += len(m["content"]) + len(TURN_SEP)
    return bases


def _turn_tokens(tok, seg: str, content: str, base: int):
    """ids, labels, offsets of one rendered assistant-turn segment (see the module docstring)."""
    enc = tok(seg, add_special_tokens=False, return_offsets_mapping=True)
    ids, offs = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    eos = tok.eos_token_id
    at = seg.find(content)
    lo, hi = (at, at + len(content)) if at >= 0 else (0, 0)
    end = base + len(content)
    stop = ids.index(eos) + 1 if eos in ids else len(ids)
    labels, spans = [], []
    for t, (tid, (a, b)) in enumerate(zip(ids, offs)):
        if t >= stop:
            labels.append(IGNORE_INDEX)
            spans.append((-1, -1))
            continue
        a, b = max(a, lo), min(b, hi)
        labels.append(tid)
        spans.append((base + a - lo, base + b - lo) if b > a and at >= 0 else (end, end))
    if eos not in ids:
        ids.append(eos)
        labels.append(eos)
        spans.append((end, end))
    return ids, labels, spans


def _encode_all(tok, messages: list[dict[str, str]], index: list[int], bases: dict[int, int]) -> dict[str, list]:
    """Every turn of ``messages`` (``index[k]``: the original position of turn k, for its base)."""
    ids: list[int] = []
    labels: list[int] = []
    offsets: list[tuple[int, int]] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(tok, messages[:i], generation_prompt=True)
        after = render(tok, messages[:i + 1])
        if not before.startswith(done) or not after.startswith(before):
            raise ConfigError(f"{getattr(tok, 'name_or_path', 'a student')}: its chat template does not render a "
                              f"conversation's prefixes as prefixes (turn {index[i]}), so assistant tokens "
                              "cannot be told apart; use a prefix-stable template for messages rows")
        ctx = tok(before[len(done):], add_special_tokens=False)["input_ids"] if len(before) > len(done) else []
        ids += ctx
        labels += [IGNORE_INDEX] * len(ctx)
        offsets += [(-1, -1)] * len(ctx)
        t_ids, t_lab, t_off = _turn_tokens(tok, after[len(before):], m["content"], bases[index[i]])
        if m.get("weight") == 0:  # a turn shown as context (e.g. the broken program of a repair pair)
            t_lab, t_off = [IGNORE_INDEX] * len(t_ids), [(-1, -1)] * len(t_ids)
        ids += t_ids
        labels += t_lab
        offsets += t_off
        done = after
    return {"input_ids": ids, "labels": labels, "offsets": offsets}


def _exchange_starts(messages: list[dict[str, str]]) -> list[int]:
    """Indices where an exchange begins: a user turn that opens the conversation or follows an assistant turn."""
    first = 1 if messages[0]["role"] == "system" else 0
    return [i for i in range(first, len(messages))
            if messages[i]["role"] == "user" and (i == first or messages[i - 1]["role"] == "assistant")]


def encode_messages(tok, messages: list[dict[str, str]], max_len: int) -> dict[str, Any]:
    """Tokenise one messages row for one student: the keys of
    :func:`~distill.students.data.encode_path` (``truncation`` is ``"none"``, ``"turns"`` when oldest
    exchanges were dropped, or ``"dropped"``), plus ``turns_dropped`` (turns not kept) and
    ``completion_len`` (labelled tokens of the whole row, before any cut)."""
    bases = _content_bases(messages)
    head = [0] if messages[0]["role"] == "system" else []
    full = None
    starts = _exchange_starts(messages)
    for k, start in enumerate(starts):
        index = head + list(range(start, len(messages)))
        enc = _encode_all(tok, [messages[i] for i in index], index, bases)
        if full is None:
            full = enc
        if len(enc["input_ids"]) <= max_len:
            outcome = "none" if k == 0 else "turns"
            return {**enc, "completion_len": _labelled(full), "truncation": outcome,
                    "turns_dropped": len(messages) - len(index)}
    n = min(max_len, len(enc["input_ids"]))  # even the last exchange does not fit: learn nothing from it
    return {"input_ids": enc["input_ids"][:n], "labels": [IGNORE_INDEX] * n, "offsets": [(-1, -1)] * n,
            "completion_len": _labelled(full), "truncation": "dropped", "turns_dropped": len(messages) - len(head)}


def _labelled(enc: dict[str, list]) -> int:
    return sum(label != IGNORE_INDEX for label in enc["labels"])
