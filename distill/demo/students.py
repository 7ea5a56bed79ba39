"""The demo's two students: tiny models (:mod:`distill.models.tiny`) whose tokenizers are trained
on the demo's own text, or a pretrained folder (``--real``)."""

from __future__ import annotations

from pathlib import Path

from distill.data.jsonl import iter_jsonl
from distill.demo.config import DemoConfig
from distill.demo.synthetic import TASK
from distill.errors import ConfigError


def tokenizer_corpus(train_file: Path, enriched_file: Path) -> list[str]:
    """In-domain text for the students' tokenizers: the train questions, the teacher's paths and
    the prompt's fixed wording (never the test split)."""
    from distill.prompting.prompts import core_prompt

    corpus = [core_prompt(TASK, row) for _, row in iter_jsonl(train_file)]
    for _, row in iter_jsonl(enriched_file):
        corpus.extend(row.get("responses") or [])
    return corpus


def build_students(cfg: DemoConfig, corpus: list[str], root: Path) -> tuple[Path, Path]:
    """Build (or locate) both students under ``root``; returns their model folders."""
    from distill.models.tiny import make_tiny_student

    paths = []
    for name, spec in (("student1", cfg.student1), ("student2", cfg.student2)):
        if spec.pretrained == "smollm2":
            from distill.demo.real import prepare_smollm2

            paths.append(prepare_smollm2(root / "smollm2-135m-instruct"))
            continue
        if spec.pretrained:
            if not (Path(spec.pretrained) / "config.json").is_file():
                raise ConfigError(f"{name}: pretrained folder {spec.pretrained} has no config.json")
            paths.append(Path(spec.pretrained))
            continue
        out = root / f"{name}_{spec.arch}"
        make_tiny_student(out, spec.arch, corpus=corpus, vocab_size=spec.vocab_size, hidden=spec.hidden,
                          layers=spec.layers, heads=spec.heads, max_positions=spec.max_positions,
                          truncation_side=spec.truncation_side, seed=spec.seed, tokenizer=spec.tokenizer or "auto")
        paths.append(out)
    return paths[0], paths[1]
