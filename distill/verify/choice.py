"""Closed-answer tasks: multiple choice, yes/no and NLI labels.

The rule everywhere is "the concluding answer, as a whole token": an anchored statement
("The best answer is (B)", "Answer: c", "So the answer is no") wins over loose mentions,
later wins over earlier, and a letter or word only counts when it stands alone, so the
capital F of "Finally" is not option F and "know" is not "no".
"""

from __future__ import annotations

import re
from typing import Any

from distill.verify.mathextract import find_boxed, looks_complete, strip_code_blocks
from distill.verify.types import HEDGED, NA

DEFAULT_LABELS = ("A", "B", "C", "D", "E")

_ANCHOR_RE = re.compile(
    r"\b(?:(?:final|best|correct|right)\s+(?:answer|option|choice)|the\s+answer|answer|the\s+(?:option|choice))"
    r"[*_]*\s*(?:is|:|=|would\s+be|will\s+be|should\s+be|must\s+be)(?:\s*:)?[*_]*[ \t]*(?P<rest>[^\n]*)",
    re.I,
)

# NLI words -> gold label vocabulary (True=entailment, Neither=neutral, False=contradiction).
NLI_WORDS: dict[str, str] = {
    "true": "entailment", "entailment": "entailment", "entails": "entailment", "entailed": "entailment",
    "yes": "entailment",
    "neither": "neutral", "neutral": "neutral", "undetermined": "neutral", "unknown": "neutral",
    "false": "contradiction", "contradiction": "contradiction", "contradicts": "contradiction",
    "contradicted": "contradiction", "no": "contradiction",
    "e": "entailment", "n": "neutral", "c": "contradiction",
}
_NLI_TOKEN_RE = re.compile(
    r"(?<![\w-])(true|false|neither|neutral|entailment|entails|entailed|contradiction|contradicts|contradicted|undetermined)(?![\w-])",
    re.I,
)
YESNO_WORDS = {"yes": "Yes", "no": "No", "true": "Yes", "false": "No"}
_YESNO_RE = re.compile(r"(?<![\w'-])(yes|no)(?![\w'-])", re.I)


def _labels(row: dict[str, Any] | None) -> list[str]:
    ch = (row or {}).get("choices")
    if isinstance(ch, dict) and isinstance(ch.get("label"), list) and ch["label"]:
        return [str(x) for x in ch["label"]]
    return list(DEFAULT_LABELS)


def _texts(row: dict[str, Any] | None) -> list[str]:
    ch = (row or {}).get("choices")
    if isinstance(ch, dict) and isinstance(ch.get("text"), list):
        return [str(x) for x in ch["text"]]
    return []


def _norm_text(s: str) -> str:
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    return re.sub(r"[^\w]+", " ", s.casefold()).strip()


def _strip_md(s: str) -> str:
    return s.replace("**", "").replace("__", "")


_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


def _unwrap(s: str) -> str:
    for _ in range(3):  # \boxed{\text{(\textbf{B})}}: peel nested wrappers
        s = _TEXT_WRAP_RE.sub(r"\1", s)
    return s


def _leading_label(rest: str, labels: list[str]) -> str | None:
    """A label at the start of an anchored answer: "(B)", "B.", "c", "option D", "\\boxed{\\text{B}}"."""
    return _leading_label_at(rest, labels)[0]


def _leading_label_at(rest: str, labels: list[str]) -> tuple[str | None, str]:
    """The leading label and the text after it (where a hedge would be: "A or D")."""
    rest = _strip_md(rest).strip()
    boxed = find_boxed(rest)
    if boxed:
        rest = boxed
    rest = _unwrap(rest)
    rest = re.sub(r"^(?:option|choice|letter)\s+", "", rest.strip(" $"), flags=re.I)
    alt = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    # "(B)" / "[B]" anywhere at the start; a bare letter only when it stands alone.
    m = re.match(rf"[(\[]\s*({alt})\s*[)\]]", rest, re.I)
    if not m:
        # bare: uppercase may be followed by text ("B because ..."), lowercase only by punctuation/end
        m = re.match(rf"({alt})(?=\s*(?:$|[).,:;!\]]))", rest, re.I) or re.match(rf"({alt})(?![\w'])", rest)
    if not m:
        return None, ""
    found = m.group(1)
    for lab in labels:
        if lab.casefold() == found.casefold():
            return lab, rest[m.end():]
    return None, ""


def _hedged_label(after: str, lab: str, labels: list[str]) -> bool:
    """Does another option follow the chosen one as an alternative ("A or D", "(C), (E)", "B/C")?

    A bare other label must be written as given (capital "A", not the article "a"); in brackets
    any case counts. "(A), not (C)" is no hedge: only a separator may stand between the two.
    """
    others = [x for x in labels if x.casefold() != lab.casefold()]
    if not others:
        return False
    alt = "|".join(re.escape(x) for x in sorted(others, key=len, reverse=True))
    after = _unwrap(_strip_md(after))
    return bool(re.match(
        rf"\s*[).\]]?\s*(?:,\s*(?i:or|and)?|(?i:or|and)|/|&)\s*(?:(?i:option|choice)\s+)?"
        rf"(?:[(\[]\s*(?i:{alt})\s*[)\]]|(?:{alt})(?![\w']))", after))


def _unique_text_choice(segment: str, labels: list[str], texts: list[str]) -> str | None:
    """The one option whose text occurs in ``segment``; ``None`` when none or several do.

    Options contained in a longer matching option ("bank" in "river bank") do not count apart.
    The segment is the answer sentence only (up to "because"/"since"/a full stop).
    """
    seg = re.split(r"\b(?:because|since|as|which|but|though|although)\b|(?<=[a-z)])\.\s", segment, maxsplit=1)[0]
    seg = f" {_norm_text(seg)} "
    spans: list[tuple[int, int, str]] = []
    for lab, txt in zip(labels, texts):
        t = _norm_text(txt)
        if not t:
            continue
        start = seg.find(f" {t} ")
        while start >= 0:
            spans.append((start, start + len(t) + 1, lab))
            start = seg.find(f" {t} ", start + 1)
    kept = {lab for s0, e0, lab in spans
            if not any(s1 <= s0 and e0 <= e1 and (e1 - s1) > (e0 - s0) for s1, e1, _ in spans)}
    return kept.pop() if len(kept) == 1 else None


def _text_choice(segment: str, labels: list[str], texts: list[str]) -> str | None:
    """The option whose text occurs last in ``segment`` (longest text on ties)."""
    seg = f" {_norm_text(segment)} "
    best: tuple[int, int, str] | None = None
    for lab, txt in zip(labels, texts):
        t = _norm_text(txt)
        if not t:
            continue
        pos = seg.rfind(f" {t} ")
        if pos >= 0:
            key = (pos + len(t), len(t), lab)
            if best is None or key[:2] > best[:2]:
                best = key
    return best[2] if best else None


def extract_mcq(response: str, row: dict[str, Any] | None = None, *, explicit_only: bool = False) -> str:
    """The concluding option label, or ``N/A``."""
    labels, texts = _labels(row), _texts(row)
    text = strip_code_blocks(response)
    anchors = list(_ANCHOR_RE.finditer(text))
    for m in reversed(anchors):
        rest = m.group("rest")
        if re.match(r"\s*[*_]*\s*either\b", rest, re.I):
            return HEDGED
        lab, after = _leading_label_at(rest, labels)
        if lab:
            return HEDGED if _hedged_label(after, lab, labels) else lab
        if texts:
            lab = _unique_text_choice(rest, labels, texts)
            if lab:
                return lab
    boxed = find_boxed(text)
    if boxed:
        lab, after = _leading_label_at(boxed, labels)
        if lab:
            return HEDGED if _hedged_label(after, lab, labels) else lab
        lab = _unique_text_choice(boxed, labels, texts) if texts else None
        if lab:
            return lab
    if explicit_only:
        return NA
    alt = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    # loose mentions: the last "(B)" in the text, or a line that is just a label ("B." / "B) bank")
    paren = list(re.finditer(rf"\(\s*({alt})\s*\)", text))
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        lab = _leading_label(lines[-1], labels)
        if lab and re.match(rf"^\W*({alt})\W*(?:$|[).:]\s)", _strip_md(lines[-1]).strip()):
            return lab
    if paren:
        last = paren[-1]
        # "... either (C) or (E)." / "(A) or (C)": a hedge between the last two mentions
        if len(paren) > 1 and paren[-2].group(1) != last.group(1) and re.fullmatch(
                r"\s*(?:,\s*)?or\s*", text[paren[-2].end():last.start()], re.I):
            return HEDGED
        found = last.group(1)
        return next(lab for lab in labels if lab == found)
    if texts and lines:
        lab = _text_choice(lines[-1], labels, texts)
        if lab:
            return lab
    return NA


def mcq_correct(pred: str, row: dict[str, Any]) -> bool:
    gold = str(row["gold_answer"]).strip().strip("()").strip()
    return pred != NA and pred.casefold() == gold.casefold()


def _map_word(word: str, table: dict[str, str]) -> str | None:
    return table.get(word.casefold())


def extract_yesno(response: str, row: dict[str, Any] | None = None, *, explicit_only: bool = False) -> str:
    """``Yes`` / ``No`` from the concluding statement; whole words only."""
    text = _strip_md(strip_code_blocks(response))
    for m in reversed(list(_ANCHOR_RE.finditer(text))):
        w = re.match(r"[\s\"'(\[$]*(yes|no|true|false)(?![\w'-])", m.group("rest"), re.I)
        if w:
            other = re.match(r"[\s\"')\].,]*(?:or|and|/)\s*[\"'(\[]*(yes|no|true|false)(?![\w'-])",
                             m.group("rest")[w.end():], re.I)
            if other and YESNO_WORDS[other.group(1).casefold()] != YESNO_WORDS[w.group(1).casefold()]:
                return HEDGED
            return YESNO_WORDS[w.group(1).casefold()]
    boxed = find_boxed(text)
    if boxed:
        w = re.fullmatch(r"\W*(?:\\text\{)?\s*(yes|no|true|false)\W*", boxed, re.I)
        if w:
            return YESNO_WORDS[w.group(1).casefold()]
    if explicit_only or not looks_complete(response):  # a cut-off response has not concluded
        return NA
    words = _YESNO_RE.findall(text)
    return YESNO_WORDS[words[-1].casefold()] if words else NA


def yesno_correct(pred: str, row: dict[str, Any]) -> bool:
    gold = YESNO_WORDS.get(str(row["gold_answer"]).strip().casefold())
    return pred != NA and gold is not None and pred == gold


def extract_nli(response: str, row: dict[str, Any] | None = None, *, explicit_only: bool = False) -> str:
    """``entailment`` / ``neutral`` / ``contradiction`` from True/Neither/False or the label words."""
    text = _strip_md(strip_code_blocks(response))
    for m in reversed(list(_ANCHOR_RE.finditer(text))):
        rest = m.group("rest").lstrip(" \"'([$")
        w = _NLI_TOKEN_RE.match(rest)
        if w:
            other = re.match(r"[\s\"')\].,]*(?:or|and|/)\s*[\"'(\[]*", rest[w.end():], re.I)
            nxt = _NLI_TOKEN_RE.match(rest[w.end() + other.end():]) if other else None
            if nxt and NLI_WORDS[nxt.group(1).casefold()] != NLI_WORDS[w.group(1).casefold()]:
                return HEDGED
            return NLI_WORDS[w.group(1).casefold()]
    boxed = find_boxed(text)
    if boxed:
        w = _NLI_TOKEN_RE.search(boxed)
        if w:
            return NLI_WORDS[w.group(1).casefold()]
    if explicit_only or not looks_complete(response):
        return NA
    words = _NLI_TOKEN_RE.findall(text)
    return NLI_WORDS[words[-1].casefold()] if words else NA


def nli_correct(pred: str, row: dict[str, Any]) -> bool:
    gold = NLI_WORDS.get(str(row["gold_answer"]).strip().casefold())
    return pred != NA and gold is not None and pred == gold


def extract_choice_text(response: str, row: dict[str, Any], *, explicit_only: bool = False) -> str:
    """Math-kind rows that carry a plain list of text choices (TabMWP multi-choice): the chosen text."""
    texts = [str(t) for t in row.get("choices") or []]
    labels = [str(i) for i in range(len(texts))]
    text = strip_code_blocks(response)
    segments = [m.group("rest") for m in reversed(list(_ANCHOR_RE.finditer(text)))]
    boxed = find_boxed(text)
    if boxed:
        segments.insert(0, boxed)
    if not explicit_only:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        segments += lines[-1:]
    for seg in segments:
        lab = _text_choice(seg, labels, texts)
        if lab is not None:
            return texts[int(lab)]
    return NA


def choice_text_correct(pred: str, row: dict[str, Any]) -> bool:
    return pred != NA and _norm_text(pred) == _norm_text(str(row["gold_answer"]))
