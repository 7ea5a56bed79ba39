"""One converter per public dataset format: a source row (as ``datasets`` yields it) -> a row of our schema.

A converter never fails on a missing column: it leaves the field ``None`` and the import reports the
row (missing gold, invalid row) with its row number. :data:`FORMATS` maps a task to its public
format; a source that already carries our fields (``id``, ``gold_answer``, ...) is copied as it is
(:data:`NATIVE`), and any other task is read by field name (:func:`generic_format`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from distill.data.latex import closing_brace, last_boxed

Row = dict[str, Any]


@dataclass(frozen=True)
class Format:
    """A public format: how its rows convert, where their ids are, which columns it needs."""

    name: str
    convert: Callable[[Row], Row]
    #: our field -> source columns that can provide it (any one); used to reject a source up front
    needs: dict[str, tuple[str, ...]]
    id_columns: tuple[str, ...] = ()
    #: an id from a source id column (``{id}``), and a made one (``{label}``: split or file stem; ``{index}``)
    id_template: str = "{id}"
    made_id_template: str = "{task}-{label}-{index:05d}"
    no_gold: str = "no gold answer"  # the report's words for a row without one
    #: fields made from the part's label (the split name or file stem), e.g. ANLI's round
    label_fields: Callable[[str], Row] | None = None


def blank(value: Any) -> bool:
    """None, NaN (a CSV's empty cell) or a blank string."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def _text(value: Any) -> str | None:
    return None if blank(value) else str(value).strip()


def _keep(value: Any) -> str | None:
    """Question text exactly as the source has it (None when blank)."""
    return None if blank(value) else str(value)


def _maybe_json(value: Any, openers: str = "{[") -> Any:
    """A nested field that a CSV stored as JSON text (``{"label": [...], ...}``) -> the object."""
    if isinstance(value, str) and value.strip()[:1] and value.strip()[0] in openers:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value






_CALC_RE = re.compile(r"<<[^<>\n]*>>")


def gsm8k(src: Row) -> Row:
    """GSM8K: ``question``; ``answer`` = rationale + ``#### N``. The rationale (calculator notes
    ``<<a*b=c>>`` removed, the ``#### N`` line kept) becomes ``solution``; N (commas removed) the gold."""
    answer = src.get("answer")
    answer = answer if isinstance(answer, str) else None
    gold = None
    if answer and "####" in answer:
        gold = answer.rsplit("####", 1)[1].strip().replace(",", "") or None
    return {"question": _keep(src.get("question")), "gold_answer": gold,
            "solution": _CALC_RE.sub("", answer) if answer else None}


def _level(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.fullmatch(r"\s*(?:level\s*)?(\d+)\s*", str(value or ""), re.I)
    return int(m.group(1)) if m else None


def math_format(src: Row) -> Row:
    """MATH / MATH-500: ``problem``, ``solution``; gold = the last ``\\boxed{}`` of the solution (else an
    ``answer`` column); ``level`` ("Level 3" -> 3) and ``type`` (MATH-500's ``subject``)."""
    solution = src.get("solution") if isinstance(src.get("solution"), str) else None
    gold = last_boxed(solution) or _text(src.get("answer"))
    return {"question": _keep(src.get("problem")), "gold_answer": gold, "level": _level(src.get("level")),
            "type": _text(src.get("type")) or _text(src.get("subject")), "solution": solution}


def _choices(value: Any) -> dict[str, list] | None:
    """``{"label": [...], "text": [...]}`` from the HF form (that dict) or the official JSONL form (a list
    of ``{"label", "text"}``); numeric labels 1-N become letters A-..."""
    value = _maybe_json(value)
    if isinstance(value, dict) and isinstance(value.get("label"), list) and isinstance(value.get("text"), list):
        labels, texts = list(value["label"]), list(value["text"])
    elif isinstance(value, list) and all(isinstance(c, dict) for c in value):
        labels, texts = [c.get("label") for c in value], [c.get("text") for c in value]
    else:
        return None
    labels = [str(lab).strip() if lab is not None else "" for lab in labels]
    return {"label": labels, "text": texts}


def _letters(choices: dict[str, list]) -> dict[str, str]:
    """Numeric labels ``1..N`` (N <= 26) -> ``A..``; empty for letter labels."""
    labels = choices["label"]
    numbered = all(lab.isdigit() for lab in labels) and sorted(int(x) for x in labels) == list(range(1, len(labels) + 1))
    if labels and numbered and len(labels) <= 26:
        return {lab: chr(ord("A") + int(lab) - 1) for lab in labels}
    return {}


def _mcq(src: Row) -> Row:
    """ARC / CommonsenseQA, HF form (``question`` text, ``choices`` dict) or official JSONL form
    (``question: {stem, choices: [...]}``); ``answerKey`` is the gold."""
    question = src.get("question")
    question = _maybe_json(question, "{")  # a question text may start with "["
    choices = src.get("choices")
    concept = src.get("question_concept")
    if isinstance(question, dict):
        choices = question.get("choices", choices)
        concept = question.get("question_concept", concept)
        question = question.get("stem")
    choices = _choices(choices)
    key = _text(src.get("answerKey"))
    if choices is not None:
        letters = _letters(choices)
        if letters:
            choices = {"label": [letters[lab] for lab in choices["label"]], "text": choices["text"]}
            key = letters.get(key, key) if key else key
    return {"question": _keep(question), "choices": choices, "gold_answer": key, "question_concept": _text(concept)}


def arc(src: Row) -> Row:
    out = _mcq(src)
    del out["question_concept"]
    return out


def yes_no(value: Any) -> str | None:
    """A boolean answer (or its words) -> ``Yes`` / ``No``."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    word = str(value).strip().casefold() if not blank(value) else ""
    return {"true": "Yes", "yes": "Yes", "1": "Yes", "false": "No", "no": "No", "0": "No"}.get(word)


def strategy_qa(src: Row) -> Row:
    """StrategyQA: ``question``, boolean ``answer`` -> Yes/No; ``facts``, ``decomposition``, ``term`` kept."""
    return {"question": _keep(src.get("question")), "gold_answer": yes_no(src.get("answer")),
            "facts": _maybe_json(src.get("facts")), "decomposition": _maybe_json(src.get("decomposition")),
            "term": _text(src.get("term"))}


_NLI = {"0": "entailment", "1": "neutral", "2": "contradiction", "e": "entailment", "n": "neutral",
        "c": "contradiction", "entailment": "entailment", "neutral": "neutral", "contradiction": "contradiction"}


def anli(src: Row) -> Row:
    """ANLI: ``premise`` (official files: ``context``), ``hypothesis``; ``label`` 0/1/2 (HF) or e/n/c
    (official) -> entailment/neutral/contradiction; ``reason`` kept. HF's -1 (no label) is no gold."""
    label = src.get("label")
    gold = None if blank(label) or isinstance(label, bool) else _NLI.get(str(label).strip().casefold())
    premise = src.get("premise") if not blank(src.get("premise")) else src.get("context")
    return {"premise": _text(premise), "hypothesis": _text(src.get("hypothesis")), "gold_answer": gold,
            "reason": _text(src.get("reason"))}


def anli_label_fields(label: str) -> Row:
    """``test_r3`` -> ``{"round": "R3", "source_split": "test_r3"}`` (the round only when the name has it)."""
    m = re.search(r"(?:^|_)r(\d)$", label, re.I)
    return {"round": f"R{m.group(1)}", "source_split": label} if m else {"source_split": label}


_OPTION_RE = re.compile(r"^\s*\(([A-Z])\)\s*(.*?)\s*$")


def bbh_date(src: Row) -> Row:
    """BBH date_understanding: ``input`` = question + ``Options:`` + ``(A) ...`` lines; ``target`` ``(B)``."""
    text = src.get("input") if isinstance(src.get("input"), str) else ""
    question, sep, options = text.partition("\nOptions:\n")
    choices = None
    if sep:
        found = [m.groups() for m in map(_OPTION_RE.match, options.splitlines()) if m]
        choices = {"label": [lab for lab, _ in found], "text": [txt for _, txt in found]} if found else None
    target = _text(src.get("target"))
    gold = target.strip("()").strip() if target else None
    return {"question": question.strip() or None, "choices": choices, "gold_answer": gold or None}


def tabmwp(src: Row) -> Row:
    """TabMWP: ``table`` (pipe text), ``table_title``, ``question``, ``answer`` (as a string), the
    multiple-choice ``choices`` (a list, else null), ``unit``, ``ques_type``, ``ans_type``, ``grade``, ``solution``."""
    choices = _maybe_json(src.get("choices"))
    answer = src.get("answer")
    return {"table": src.get("table") if isinstance(src.get("table"), str) else None,
            "table_title": _text(src.get("table_title")), "question": _keep(src.get("question")),
            "gold_answer": None if blank(answer) else str(answer).strip(),
            "choices": list(choices) if isinstance(choices, list) and choices else None,
            "unit": _text(src.get("unit")), "ques_type": _text(src.get("ques_type")),
            "ans_type": _text(src.get("ans_type")), "grade": src.get("grade"), "solution": _keep(src.get("solution"))}


#: task -> its public format.
FORMATS: dict[str, Format] = {
    "gsm8k": Format("GSM8K (question/answer)", gsm8k, {"question": ("question",), "gold_answer": ("answer",)},
                    no_gold="no '#### N' line in column 'answer'"),
    "math": Format("MATH (problem/solution)", math_format,
                   {"question": ("problem",), "gold_answer": ("solution", "answer")}, ("unique_id",),
                   no_gold="no \\boxed{} in column 'solution' and no 'answer'"),
    "arc_challenge": Format("ARC (question/choices/answerKey)", arc,
                            {"question": ("question",), "gold_answer": ("answerKey",)}, ("id",),
                            no_gold="empty 'answerKey'"),
    "commonsense_qa": Format("CommonsenseQA (question/choices/answerKey)", _mcq,
                             {"question": ("question",), "gold_answer": ("answerKey",)}, ("id",),
                             no_gold="empty 'answerKey' (CommonsenseQA's test split has none: use validation)"),
    "strategy_qa": Format("StrategyQA (question/answer)", strategy_qa,
                          {"question": ("question",), "gold_answer": ("answer",)}, ("qid", "id"),
                          no_gold="'answer' is not a boolean or yes/no"),
    "anli": Format("ANLI (premise/hypothesis/label)", anli,
                   {"premise": ("premise", "context"), "hypothesis": ("hypothesis",), "gold_answer": ("label",)},
                   ("uid", "id"), no_gold="'label' is not 0/1/2 or e/n/c (-1: unlabelled)",
                   label_fields=anli_label_fields),
    "date": Format("BBH (input/target)", bbh_date, {"question": ("input",), "gold_answer": ("target",)},
                   made_id_template="bbh-date-{index:03d}", no_gold="empty 'target'"),
    "table_mwp": Format("TabMWP (table/question/answer)", tabmwp,
                        {"question": ("question",), "table": ("table",), "gold_answer": ("answer",)},
                        ("pid",), id_template="tabmwp-{id}", no_gold="empty 'answer'"),
}


def native_format(columns: list[str]) -> Format:
    """Our own schema: every column copied as it is."""
    return Format("our schema (copied)", lambda src: {c: src.get(c) for c in columns}, {}, ("id",))


def generic_format(required: tuple[str, ...]) -> Format:
    """A task without a public format: its fields by name (plus ``solution``/``facts``), or from ``--map``."""
    fields = tuple(f for f in required if f != "id") + ("solution", "facts")
    return Format("by field name", lambda src: {f: src.get(f) for f in fields if f in src},
                  {f: (f,) for f in required if f != "id"}, ("id",))
