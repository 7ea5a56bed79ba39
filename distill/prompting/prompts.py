"""Core prompts: what the teacher must answer and in which final-answer format.

The format line matters more than the wording: the verifiers extract the answer from
``\\boxed{}`` (math), "The best answer is X" (multiple choice), a final Yes/No
(strategy_qa), True/False/Neither (anli), or the program in a block fenced in its language
(```smt2, ```asp, ```dot: the formal tasks, whose last such block is run by the solver). The reasoning styles
(:mod:`distill.prompting.styles`) wrap the question part only; the format line always
comes last, so no style can bury it.
"""

from __future__ import annotations

from typing import Any

from distill.data.tasks import TaskSpec, get_task, is_formal

MATH_FORMAT = "Put the final answer in \\boxed{}."
MCQ_FORMAT = 'End your response with "The best answer is [LETTER]" where [LETTER] is one of {letters}.'
YESNO_FORMAT = 'End your response with "The answer is Yes" or "The answer is No".'
NLI_FORMAT = ('Is the hypothesis true given the premise? End your response with "The answer is True", '
              '"The answer is False" or "The answer is Neither".')
#: Formal kinds: the fence tag asked for (one the extractor takes) and what runs the block.
FORMAL_FORMATS: dict[str, str] = {
    "smt": ("Write the model as one SMT-LIB2 script (declarations, assertions and (check-sat)) in a ```smt2 "
            "fenced block. The last ```smt2 block of your response is run with Z3."),
    "asp": ("Write the answer set program for clingo in a ```asp fenced block. The last ```asp block of your "
            "response is solved with clingo{facts}."),
    "dot": ("Write the graph in the DOT language in a ```dot fenced block. The last ```dot block of your "
            "response is read with Graphviz."),
}


def core_prompt(task: str | TaskSpec, row: dict[str, Any]) -> str:
    """The task's question, plus its table/choices, without any reasoning style."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    if spec.name == "table_mwp":
        title = row.get("table_title")
        table = f"Table: {title}\n{row['table']}" if title else f"Table:\n{row['table']}"
        body = f"{table}\n\nQuestion: {row['question']}"
        if row.get("choices"):  # some TabMWP questions are multiple choice over free text options
            body += "\nOptions: " + ", ".join(str(c) for c in row["choices"])
        return f"{body}\n\n{MATH_FORMAT}"
    if spec.kind == "math":
        return f"Question: {row['question']}\n\n{MATH_FORMAT}"
    if spec.kind == "mcq":
        labels, texts = row["choices"]["label"], row["choices"]["text"]
        opts = "\n".join(f"({lab}) {txt}" for lab, txt in zip(labels, texts))
        letters = ", ".join(labels)
        return f"Question: {row['question']}\nOptions:\n{opts}\n\n" + MCQ_FORMAT.replace("{letters}", letters)
    if spec.kind == "yesno":
        return f"Question: {row['question']}\n\n{YESNO_FORMAT}"
    if spec.kind == "nli":
        return f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}\n\n{NLI_FORMAT}"
    if is_formal(spec):
        body = f"Problem: {row['question']}"
        facts = row.get("facts")
        if isinstance(facts, str) and facts.strip():  # ASP instances: shown, and appended before solving
            body += f"\nInstance (these facts are added to your program):\n```{spec.kind}\n{facts.strip()}\n```"
        fmt = FORMAL_FORMATS[spec.kind].replace(
            "{facts}", " together with the instance's facts" if isinstance(facts, str) and facts.strip() else "")
        return f"{body}\n\n{fmt}"
    raise ValueError(f"task {spec.name!r} has unknown kind {spec.kind!r}")  # registry bug, not user input


def build_prompt(task: str | TaskSpec, row: dict[str, Any], style) -> str:
    """Wrap the question part of the core prompt in a style; the answer-format line goes last
    so that no style template can bury it."""
    core = core_prompt(task, row)
    body, fmt = core.rsplit("\n\n", 1)
    return f"{style.wrap(body)}\n\n{fmt}"
