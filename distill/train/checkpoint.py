"""Checkpoints: the loop position, saving and rotating ``save_state`` folders, resuming, adapters.

A checkpoint is an ``accelerator.save_state`` folder under ``outdir/checkpoints/`` (model, optimizer,
scheduler, RNG of every rank, and the loop's :class:`Progress`); a ``progress.json`` written last
marks it complete, so ``--resume_from latest`` never picks a half-written one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from distill.data.jsonl import atomic_write_jsonl, atomic_write_text
from distill.errors import ConfigError


class Progress:
    """Loop position, checkpointed with the run so a resume continues exactly here."""

    def __init__(self) -> None:
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0  # micro-batches of the current epoch already done (this rank's list)
        self.router_log: list[dict[str, Any]] = []  # this epoch's router log, gathered (main process)

    def state_dict(self) -> dict[str, Any]:
        return {"global_step": self.global_step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "router_log": list(self.router_log)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step = int(state["global_step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.router_log = list(state.get("router_log", []))


def checkpoint_problem(folder: Path, world: int) -> str | None:
    """Why ``folder`` cannot be resumed by ``world`` processes (``None`` when it looks whole).

    Checks, without loading tensors: ``progress.json`` parses; the model weights (``model*.safetensors``
    / ``pytorch_model*.bin``, or a DeepSpeed ``pytorch_model/`` folder) are present; ``optimizer.bin``
    and ``scheduler.bin`` (non-DeepSpeed) and one ``random_states_{rank}.pkl`` per process exist; every
    ``torch.save`` file is a complete zip archive and every safetensors header matches its file size. A
    missing ``random_states`` file used to resume silently with fresh random streams.
    """
    import zipfile

    try:
        json.loads((folder / "progress.json").read_text())
    except (OSError, ValueError) as exc:
        return f"progress.json unreadable ({exc})"
    deepspeed = (folder / "pytorch_model").is_dir()
    weights = sorted(folder.glob("model*.safetensors")) + sorted(folder.glob("pytorch_model*.bin"))
    if not weights and not deepspeed:
        return "no model weights (model.safetensors)"
    need = [f"random_states_{r}.pkl" for r in range(world)]
    if not deepspeed:
        need += ["optimizer.bin", "scheduler.bin"]
    for name in need:
        if not (folder / name).is_file():
            return f"{name} is missing"
    for f in sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pkl")):
        if not zipfile.is_zipfile(f):
            return f"{f.name} is truncated or corrupt"
        with zipfile.ZipFile(f) as z:
            if z.testzip() is not None:
                return f"{f.name} is truncated or corrupt"
    for f in weights:
        if f.suffix == ".safetensors" and not _safetensors_whole(f):
            return f"{f.name} is truncated or corrupt"
    return None


def _safetensors_whole(path: Path) -> bool:
    """The header parses and the tensors it declares end exactly at the end of the file."""
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + n + end
    except (OSError, ValueError, KeyError, TypeError):
        return False


def find_checkpoint(outdir: Path, resume_from: str, world: int = 1, warn=print) -> Path:
    """``latest`` -> the newest complete checkpoint under ``outdir/checkpoints`` whose files are whole
    (a damaged newer one is skipped with a warning); else the folder given, which must be whole."""
    if resume_from == "latest":
        root = outdir / "checkpoints"
        done = [p.parent for p in root.glob("*/progress.json")] if root.is_dir() else []
        if not done:
            raise ConfigError(f"--resume_from latest: no complete checkpoint under {root}; "
                              "drop --resume_from to start a new run")

        def step(p: Path) -> int:
            try:
                return int(json.loads((p / "progress.json").read_text())["global_step"])
            except (OSError, ValueError, KeyError):
                return -1

        for cand in sorted(done, key=step, reverse=True):
            problem = checkpoint_problem(cand, world)
            if problem is None:
                return cand
            warn(f"warning: skipping checkpoint {cand}: {problem}")
        raise ConfigError(f"--resume_from latest: every checkpoint under {root} is damaged; "
                          "drop --resume_from to start a new run")
    p = Path(resume_from)
    if not p.is_dir():
        raise ConfigError(f"--resume_from {p}: no such checkpoint folder")
    if not (p / "progress.json").is_file():
        raise ConfigError(f"--resume_from {p}: not a complete checkpoint folder (no progress.json)")
    problem = checkpoint_problem(p, world)
    if problem is not None:
        raise ConfigError(f"--resume_from {p}: {problem}; resume from an earlier checkpoint or 'latest'")
    return p


class Checkpointer:
    """Saves ``{tag}{step:08d}`` folders (every rank must call :meth:`save`), keeping only the newest
    ``keep`` step checkpoints (0 keeps all), and restores the newest on resume."""

    def __init__(self, accelerator, outdir: Path, progress: Progress, keep: int):
        self.accelerator = accelerator
        self.root = outdir / "checkpoints"
        self.progress = progress
        self.keep = keep

    def save(self, tag: str = "step_") -> Path:
        d = self.root / f"{tag}{self.progress.global_step:08d}"
        self.accelerator.save_state(str(d))
        if self.accelerator.is_main_process:
            marker = self.progress.state_dict() | {"router_log": len(self.progress.router_log)}
            atomic_write_text(d / "progress.json", json.dumps(marker) + "\n")
            if self.keep:
                done = sorted((p.parent for p in self.root.glob("step_*/progress.json")), key=lambda p: p.name)
                for old in done[: -self.keep]:
                    shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return d

    def resume(self, resume_from: str | None, metrics_file: Path) -> None:
        """Load the checkpoint named by ``resume_from`` (if any) and drop metric lines of steps that
        will be redone; a fresh run starts a fresh metrics file."""
        main = self.accelerator.is_main_process
        if resume_from:
            ckpt = find_checkpoint(self.root.parent, resume_from, self.accelerator.num_processes,
                                   warn=self.accelerator.print)
            self.accelerator.load_state(str(ckpt))
            p = self.progress
            self.accelerator.print(f"resumed from {ckpt} at step {p.global_step} "
                                   f"(epoch {p.epoch}, batch {p.batch_in_epoch})")
            if main and metrics_file.exists():
                keep = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
                atomic_write_jsonl(metrics_file, [m for m in keep if m.get("step", 0) <= p.global_step])
        elif main and metrics_file.exists():
            metrics_file.unlink()


def save_adapters(accelerator, model, tokenizers: dict[str, Any], outdir: Path) -> None:
    """Each student's PEFT adapter + tokenizer under ``outdir/student{k}`` (full weights gathered
    from ZeRO-3 shards first; every rank must call this)."""
    state = accelerator.get_state_dict(model)
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        for key, name in (("s1", "student1"), ("s2", "student2")):
            student = getattr(unwrapped, name)
            if student is None:
                continue
            prefix = f"{name}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            student.save_pretrained(outdir / name, state_dict=sub)
            tokenizers[key].save_pretrained(outdir / name)
    accelerator.wait_for_everyone()
