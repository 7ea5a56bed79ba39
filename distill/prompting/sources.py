"""Which source files a run reads: ``--dataset`` names, ``--root`` scanning rules, ``--input``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.data.jsonl import is_output_file, stem_of
from distill.data.tasks import TASKS, TaskSpec, get_task
from distill.errors import ConfigError, DistillError


def resolve_datasets(dataset: str) -> list[TaskSpec]:
    """``"gsm8k"``, ``"gsm8k,math"`` or ``"all"`` -> task specs (unknown names list the valid ones)."""
    if dataset == "all":
        return list(TASKS.values())
    return [get_task(name.strip()) for name in dataset.split(",") if name.strip()]


def discover_sources(root: str | Path, tasks: list[TaskSpec], *, include_train: bool = False,
                     require: bool = True) -> list[tuple[TaskSpec, Path]]:
    """Every source ``*.jsonl`` under ``<root>/<task>/`` (recursively), skipping ``train/``
    folders and ``train.jsonl`` unless ``include_train``, and never our own outputs."""
    root = Path(root)
    found: list[tuple[TaskSpec, Path]] = []
    for spec in tasks:
        tdir = root / spec.name
        if not tdir.is_dir():
            continue
        for p in sorted(tdir.rglob("*.jsonl")):
            rel = p.relative_to(tdir)
            if is_output_file(p) or p.name.startswith("."):
                continue
            if not include_train and ("train" in rel.parts[:-1] or stem_of(p) == "train"):
                continue
            found.append((spec, p))
    if require and not found:
        names = ", ".join(s.name for s in tasks)
        raise DistillError(f"no source *.jsonl files for {names} under {root} "
                           f"(looked in <root>/<task>/; train files need --include-train)")
    return found


@dataclass
class SourceSelection:
    """``--root``/``--dataset``/``--input``/``--include-train`` of ``distill prompt`` and ``judge``."""

    root: str | Path = "./data"
    dataset: str = "all"
    input: Path | None = None
    include_train: bool = False

    def tasks(self) -> list[TaskSpec]:
        return resolve_datasets(self.dataset)

    def pairs(self, *, require: bool = True) -> list[tuple[TaskSpec, Path]]:
        """(task, file) pairs from ``input`` or by scanning ``root``."""
        tasks = self.tasks()
        if self.input is not None:
            path = Path(self.input)
            if len(tasks) != 1:
                raise ConfigError("--input needs exactly one --dataset naming the file's task")
            if not path.is_file():
                raise ConfigError(f"--input {path}: no such file")
            return [(tasks[0], path)]
        return discover_sources(self.root, tasks, include_train=self.include_train, require=require)
