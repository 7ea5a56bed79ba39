"""One rank of the 2-process launch in ``tests/test_router_ddp.py`` (not a test itself).

Builds what the engine builds, at toy size: a :class:`~distill.train.mixture.MixtureModel` of two tiny
Llama students and a :class:`~distill.router.router.CoTRouter`, an Accelerator from
:func:`distill.train.setup.make_accelerator` (so the run's DDP kwargs apply), prepared by Accelerate
(DDP or DeepSpeed, whichever the launcher set up). Each rank feeds its OWN batches (different rows and
a different batch size per rank) through the engine's step for a few micro-batches, recording what the
mixture fed ``aux_loss`` and the router's buffers after each; it then round-trips the buffers through
``save_state`` / ``load_state`` and writes everything the test compares to ``<out>/rank<r>.pt``.

Usage: ``accelerate launch ... tests/router_ddp_worker.py OUT_DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

EMBED, BANK, MICRO_BATCHES, GRAD_ACCUM = 16, 12, 6, 2
SIZES = (5, 3)  # paths per micro-batch on rank 0 and rank 1: unequal, so the gather must pad
VOCAB, SEQ = 64, 10


def tiny_student(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def make_batch(rank: int, step: int, device) -> dict:
    """This rank's micro-batch ``step``: random tokens and path embeddings, seeded by (rank, step)."""
    g = torch.Generator().manual_seed(1000 * rank + step)
    n = SIZES[rank]
    batch = {"route_emb": torch.randn(n, EMBED, generator=g) + 3.0 * rank}
    for key in ("s1", "s2"):
        ids = torch.randint(3, VOCAB, (n, SEQ), generator=g)
        labels = ids.clone()
        labels[:, :2] = -100  # a "prompt"
        batch[key] = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {k: ({kk: vv.to(device) for kk, vv in v.items()} if isinstance(v, dict) else v.to(device))
            for k, v in batch.items()}


def main(out: Path) -> None:
    from distill.router.router import CoTRouter
    from distill.train.config import DataConfig, OptimConfig, StudentsConfig, TrainConfig
    from distill.train.mixture import MixtureModel
    from distill.train.setup import deepspeed_checks, make_accelerator

    cfg = TrainConfig(data=DataConfig(task="arith"), students=StudentsConfig(model1="tiny", model2="tiny"),
                      optim=OptimConfig(bs=max(SIZES), grad_accum=GRAD_ACCUM))
    acc = make_accelerator(cfg)
    deepspeed_checks(acc, cfg)
    rank = acc.process_index
    assert acc.num_processes == 2, acc.num_processes
    torch.manual_seed(0)
    router = CoTRouter(EMBED, hidden=8, bank_size=BANK)
    model = MixtureModel(tiny_student(1), tiny_student(2), router)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, optimizer = acc.prepare(model, optimizer)
    router = acc.unwrap_model(model).router
    model.train()
    seen = {"emb": [], "nll1": [], "nll2": [], "loss_stats": [], "bank_fill": []}
    real_aux_loss = router.aux_loss

    def recording_aux_loss(decision, nll1=None, nll2=None):
        """Pass-through: records exactly what the mixture fed the router (the test replays it)."""
        for key, x in (("emb", decision.emb), ("nll1", nll1), ("nll2", nll2)):
            seen[key].append(x.detach().clone().cpu())
        return real_aux_loss(decision, nll1, nll2)

    router.aux_loss = recording_aux_loss
    for step in range(MICRO_BATCHES):
        batch = make_batch(rank, step, acc.device)
        with acc.accumulate(model):  # as the engine: every micro-batch calls aux_loss, synced or not
            acc.backward(model(batch).loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        seen["loss_stats"].append(router.loss_stats.detach().clone().cpu())
        seen["bank_fill"].append(int(router.bank_fill))
    final = {k: v.detach().clone().cpu() for k, v in router.named_buffers()}

    # Resume path: the buffers are module buffers, so they travel in the checkpoint.
    acc.wait_for_everyone()
    acc.save_state(str(out / "ckpt"))
    acc.wait_for_everyone()  # rank 0 writes the model file; as Checkpointer.save, wait before reading it
    with torch.no_grad():
        for b in router.buffers():
            b.zero_()
    acc.load_state(str(out / "ckpt"))
    restored = {k: v.detach().clone().cpu() for k, v in router.named_buffers()}

    torch.save({"rank": rank, "sizes": SIZES, "embed": EMBED, "bank_size": BANK, "momentum": router.momentum,
                "wrapper": type(model).__name__, "broadcast_buffers": getattr(model, "broadcast_buffers", None),
                "seen": seen, "final": final, "restored": restored}, out / f"rank{rank}.pt")
    acc.wait_for_everyone()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
