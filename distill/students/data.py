"""Training examples (one per reasoning path), per-student tokenisation, and batching.

Why one example per *path*: the router decides, path by path, which student learns it,
so every verified path of a sample is its own example (the research code kept one).
Each student sees the same path through its **own** tokenizer and chat template; the
label mask is computed from that tokenizer's prompt length *after* truncation, and the
character offsets of completion tokens within the response text are kept so that a
cross-tokenizer peer loss can align the two students token-to-character.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import torch

from distill.data.jsonl import DataError, is_output_file, iter_jsonl, read_rows, stem_of, validate_row
from distill.data.tasks import get_task
from distill.errors import ConfigError
from distill.losses import IGNORE_INDEX


# ------------------------------------------------------------------------------------- prompts
def question_text(task: str, row: dict[str, Any]) -> str:
    """The prompt a student sees for a row: the task's core question (choices, table, answer
    format), without the teacher's reasoning-style wrapper. Same at training and evaluation."""
    from distill.prompting.prompts import core_prompt

    return core_prompt(task, row)


def chat_prompt(tok, question: str) -> str:
    """The student's chat-formatted prompt text, ending where the assistant's answer starts.

    Tokenizers without a chat template (base models) get a plain ``question\\nAnswer: `` form
    preceded by their BOS token, if they have one.
    """
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                       tokenize=False)
    return f"{tok.bos_token or ''}{question}\nAnswer: "


def context_window(model_config) -> int | None:
    """The model's maximum sequence length (``max_position_embeddings`` / ``n_positions``)."""
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(model_config, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


# ------------------------------------------------------------------------------------ reading
def _source_rows(folder: Path, task: str) -> dict[str, dict[str, Any]]:
    """id -> source row from the non-output ``*.jsonl`` and the ``*.enriched.jsonl`` of a folder."""
    by_id: dict[str, dict[str, Any]] = {}
    spec = get_task(task)
    files = sorted(folder.glob("*.enriched.jsonl")) + sorted(p for p in folder.glob("*.jsonl") if not is_output_file(p))
    for f in files:
        for lineno, row in iter_jsonl(f):
            validate_row(row, spec, f, lineno)
            by_id.setdefault(str(row["id"]), row)
    return by_id


def _paths_from_row(row: dict[str, Any], src: dict[str, Any], task: str, *, only_correct: bool,
                    file: str, lineno: int) -> list[dict[str, Any]]:
    responses = row.get("responses")
    if not isinstance(responses, list):
        raise DataError(file, lineno, "missing or non-list field 'responses'")
    n = len(responses)
    styles = row.get("styles") or [None] * n
    flags = row.get("correct_flags")
    idx = row.get("path_idx") or list(range(n))
    if len(styles) != n or len(idx) != n or (flags is not None and len(flags) != n):
        raise DataError(file, lineno, f"path fields styles/path_idx/correct_flags must have {n} entries like 'responses'")
    q = question_text(task, src)
    out = []
    for i, resp in enumerate(responses):
        correct = bool(flags[i]) if flags is not None else (True if only_correct else None)
        if only_correct and flags is not None and not flags[i]:
            continue
        if not isinstance(resp, str) or not resp.strip():
            continue
        out.append({"id": str(row["id"]), "path_idx": int(idx[i]), "style": styles[i], "correct": correct,
                    "question_text": q, "response": resp})
    return out


def _kind(path: Path) -> str:
    name = path.name
    if name.endswith(".enriched.jsonl"):
        return "enriched"
    if name.endswith(".judged.jsonl"):
        return "judged"
    if name.endswith(".correct.jsonl"):
        return "correct"
    raise ConfigError(f"{path}: a training file must be *.correct.jsonl, *.judged.jsonl or *.enriched.jsonl")


def train_files(cfg) -> list[Path]:
    """The training files the config selects (explicit file, or the research layout glob)."""
    if cfg.train_file:
        p = Path(cfg.train_file)
        if not p.is_file():
            raise ConfigError(f"--train_file {p}: no such file")
        _kind(p)
        return [p]
    folder = Path(cfg.data_root) / cfg.task / "train"
    suffix = "judged" if cfg.judged_only else ("correct" if cfg.is_quality else "enriched")
    files = sorted(Path(p) for p in glob.glob(str(folder / f"*.{suffix}.jsonl")))
    if not files:
        hint = "run `distill judge`" if suffix == "judged" else "run `distill prompt`"
        raise ConfigError(f"no training data for task {cfg.task!r}: {folder}/*.{suffix}.jsonl matched nothing "
                          f"({hint}, or pass --train_file)")
    return files


def load_train_paths(cfg) -> list[dict[str, Any]]:
    """Every training path as ``{id, path_idx, style, correct, question_text, response}``.

    Correct/judged rows only hold ids and paths: their question comes from the source rows
    (non-output ``*.jsonl`` or ``*.enriched.jsonl``) in the same folder. ``sample_size`` keeps
    the first N rows (all of their paths).
    """
    examples: list[dict[str, Any]] = []
    rows_seen = 0
    for f in train_files(cfg):
        kind = _kind(f)
        sources = _source_rows(f.parent, cfg.task) if kind != "enriched" else {}
        spec = get_task(cfg.task)
        for lineno, row in iter_jsonl(f):
            if cfg.sample_size is not None and rows_seen >= cfg.sample_size:
                break
            if "id" not in row:
                raise DataError(f, lineno, "missing required field 'id'")
            if kind == "enriched":
                validate_row(row, spec, f, lineno, enriched=True)
                src = row
            else:
                src = sources.get(str(row["id"]))
                if src is None:
                    raise DataError(f, lineno, f"id {row['id']!r} has no source row (no matching *.jsonl or "
                                               f"*.enriched.jsonl in {f.parent})")
            examples.extend(_paths_from_row(row, src, cfg.task, only_correct=(kind != "enriched"),
                                            file=str(f), lineno=lineno))
            rows_seen += 1
    if not examples:
        raise ConfigError(f"no training paths in {', '.join(map(str, train_files(cfg)))}")
    return examples


def load_test_rows(cfg) -> list[dict[str, Any]]:
    """Test rows from ``--test_file`` or ``<root>/<task>/test/*.jsonl`` (source files only)."""
    if cfg.test_file:
        files = [Path(cfg.test_file)]
        if not files[0].is_file():
            raise ConfigError(f"--test_file {cfg.test_file}: no such file")
    else:
        folder = Path(cfg.data_root) / cfg.task / "test"
        files = sorted(p for p in folder.glob("*.jsonl") if not is_output_file(p))
        if not files:
            raise ConfigError(f"no test data for task {cfg.task!r}: {folder}/*.jsonl matched nothing "
                              "(pass --test_file)")
    rows: list[dict[str, Any]] = []
    for f in files:
        rows.extend(read_rows(f, cfg.task))
    limit = getattr(cfg, "eval_limit", None)
    return rows[:limit] if limit else rows


# ------------------------------------------------------------------------------- tokenisation
def encode_path(tok, question: str, response: str, max_len: int) -> dict[str, list]:
    """Tokenise one path for one student.

    ``input_ids = prompt_ids + response_ids + [eos]``; ``labels`` are ``-100`` on the prompt;
    ``offsets[t] = (start, end)`` of token t within ``response`` for completion tokens (EOS:
    ``(len, len)``) and ``(-1, -1)`` on prompt tokens. Truncation to ``max_len`` follows the
    tokenizer's ``truncation_side`` and happens before the label mask is final, so a
    left-truncated prompt still masks exactly the prompt tokens that remain.
    """
    p_ids = tok(chat_prompt(tok, question), add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False, return_offsets_mapping=True)
    r_ids, r_off = list(r["input_ids"]), [tuple(o) for o in r["offset_mapping"]]
    eos = tok.eos_token_id
    ids = list(p_ids) + r_ids + [eos]
    labels = [IGNORE_INDEX] * len(p_ids) + r_ids + [eos]
    offsets = [(-1, -1)] * len(p_ids) + r_off + [(len(response), len(response))]
    if len(ids) > max_len:
        if getattr(tok, "truncation_side", "right") == "left":
            ids, labels, offsets = ids[-max_len:], labels[-max_len:], offsets[-max_len:]
        else:
            ids, labels, offsets = ids[:max_len], labels[:max_len], offsets[:max_len]
    return {"input_ids": ids, "labels": labels, "offsets": offsets}


class PathDataset:
    """The training paths, pre-tokenised once per student (tokenisation is cheap next to training,
    and doing it up front makes lengths known for length-grouped batching)."""

    def __init__(self, examples: list[dict[str, Any]], tokenizers: dict[str, Any], max_lens: dict[str, int]):
        self.examples = examples
        self.tokenizers = tokenizers
        self.encoded = {k: [encode_path(tok, ex["question_text"], ex["response"], max_lens[k]) for ex in examples]
                        for k, tok in tokenizers.items()}
        self.route_emb: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.examples)

    def length(self, i: int) -> int:
        return max(len(enc[i]["input_ids"]) for enc in self.encoded.values())

    def fully_truncated(self) -> dict[str, int]:
        """Per student, how many paths lost every completion token to truncation."""
        return {k: sum(all(l == IGNORE_INDEX for l in e["labels"]) for e in enc) for k, enc in self.encoded.items()}

    def collate(self, indices: list[int]) -> dict[str, Any]:
        """The batch dict: ``{"s1": {...}, "s2": {...}, "meta": {...}, "route_emb": Tensor | None}``.

        Dynamic right padding to the batch's longest sequence per student (no fixed max length).
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
            batch[key] = {"input_ids": ids, "attention_mask": att, "labels": lab, "offsets": off}
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
