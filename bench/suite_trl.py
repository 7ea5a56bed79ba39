"""``vs_trl_sft``: our single-student SFT (``distill train --recipe solo1``, the real engine in its own
process) against TRL's ``SFTTrainer`` (its own process) on the same model, data, LoRA settings, batch size
and max length, completion-only loss in both, no gradient checkpointing in either.

Both sides count the tokens they actually ran (prompt + completion + EOS, pads excluded) and divide by their
training loop's wall time: ours the engine's ``tokens_per_s`` (``train_summary.json``: the sum of the step
times), TRL's its ``train_runtime``. CPU seconds per token are recorded too (less sensitive to other users'
load). TRL batches in random order, padded to the batch's longest; we group by length (``epoch_batches``).

    python bench/suite_trl.py --child-trl CONFIG.json    # the TRL side, prints one JSON line
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from suite_common import ROOT, clean_solution, cpu_s, figure, gsm8k_rows, make_pair, torch_threads

SIZE = {"hidden": 128, "layers": 4}


def write_train_file(folder: Path, n: int) -> Path:
    """``n`` GSM8K train rows as a ``*.correct.jsonl`` with one verified path each (the reference solution)."""
    path = folder / "gsm8k" / "train" / "bench.correct.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in gsm8k_rows(n):
            fh.write(json.dumps({"id": r["id"], "question": r["question"], "gold_answer": r["gold_answer"],
                                 "responses": [clean_solution(r["solution"])], "styles": ["cot"],
                                 "correct_flags": [True]}) + "\n")
    return path


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false",
            "DISTILL_NO_PROGRESS": "1", "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}


def run_ours(model: Path, train_file: Path, out: Path, opts: dict[str, Any], profile: Path | None = None) -> dict[str, Any]:
    # under cProfile the command runs through train.main (``python -m cProfile -m`` would rename its module)
    prof = ["-c", f"import cProfile, sys; from distill.commands import train; "
                  f"cProfile.run('rc = train.main(sys.argv[1:])', {str(profile)!r})"] if profile else ["-m", "distill.commands.train"]
    cmd = [sys.executable, *prof, "--task", "gsm8k", "--train_file", str(train_file),
           "--model1", str(model), "--recipe", "solo1", "--eval_at_end", "false", "--epochs", "1",
           "--bs", str(opts["bs"]), "--max_len", str(opts["max_len"]), "--lora_r", str(opts["lora_r"]),
           "--seed", str(opts["seed"]), "--outdir", str(out), "--log_every", "1000"]
    c0, t0 = cpu_s(children=True), time.perf_counter()
    res = subprocess.run(cmd, env=_env(opts["threads"]), capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_s(children=True) - c0
    if res.returncode:
        raise RuntimeError(f"distill train failed (rc {res.returncode}): {res.stderr.strip().splitlines()[-1:]}")
    s = json.loads((out / "train_summary.json").read_text(encoding="utf-8"))
    return {"tokens": s["tokens_this_run"], "tokens_per_s": s["tokens_per_s"], "steps": s["steps"],
            "mean_step_time_s": s.get("mean_step_time_s"), "peak_rss_gib": s.get("peak_rss_gib"),
            "process_wall_s": round(wall, 2), "process_cpu_s": round(cpu, 2), "command": cmd}


def run_trl(model: Path, train_file: Path, out: Path, opts: dict[str, Any]) -> dict[str, Any]:
    cfg = out.with_suffix(".json")
    cfg.write_text(json.dumps({"model": str(model), "train_file": str(train_file), "out": str(out), **opts}))
    res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-trl", str(cfg)],
                         env=_env(opts["threads"]), capture_output=True, text=True)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode or not lines:
        raise RuntimeError(f"TRL SFTTrainer run failed (rc {res.returncode}): {res.stderr.strip().splitlines()[-3:]}")
    return json.loads(lines[-1])


def child_trl(cfg_path: str) -> int:
    """The TRL side: SFTTrainer, prompt-completion data (our chat prompt as the prompt text), our LoRA config."""
    o = json.loads(Path(cfg_path).read_text())
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from distill.students.data import chat_prompt, question_text
    from distill.students.load import lora_config
    from distill.students.tokenizer import load_tokenizer
    from distill.train.config import TrainConfig

    torch.manual_seed(o["seed"])
    tok = load_tokenizer(o["model"])
    rows = [json.loads(line) for line in Path(o["train_file"]).read_text(encoding="utf-8").splitlines()]
    data = Dataset.from_list([{"prompt": chat_prompt(tok, question_text("gsm8k", r)), "completion": r["responses"][0]}
                              for r in rows])
    model = AutoModelForCausalLM.from_pretrained(o["model"])
    lcfg = TrainConfig.from_flat(task="gsm8k", model1=o["model"], lora_r=o["lora_r"], is_sft=True).lora
    model = get_peft_model(model, lora_config(lcfg, model))
    args = SFTConfig(output_dir=o["out"], per_device_train_batch_size=o["bs"], num_train_epochs=1,
                     max_length=o["max_len"], completion_only_loss=True, packing=False, padding_free=False,
                     gradient_checkpointing=False, use_cpu=True, bf16=False, fp16=False, save_strategy="no",
                     report_to=[], logging_steps=1000, disable_tqdm=True, seed=o["seed"], max_grad_norm=1.0,
                     dataloader_num_workers=0, learning_rate=2e-4)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
    c0, t0 = cpu_s(), time.perf_counter()
    result = trainer.train()
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    print(json.dumps({"tokens": tokens, "tokens_per_s": tokens / result.metrics["train_runtime"],
                      "train_runtime_s": result.metrics["train_runtime"], "loop_wall_s": wall, "loop_cpu_s": cpu,
                      "steps": result.global_step, "trl": __import__("trl").__version__}), flush=True)
    return 0


def profile_top(prof: Path, top: int = 12) -> list[dict[str, Any]]:
    """The profile's top functions by cumulative time (own time beside it)."""
    import pstats

    rows = sorted(pstats.Stats(str(prof)).stats.items(), key=lambda kv: -kv[1][3])[:top]
    return [{"function": f"{Path(f).name}:{line}:{name}", "cum_s": round(ct, 3), "own_s": round(tt, 3), "calls": nc}
            for (f, line, name), (_, nc, tt, ct, _) in rows]


def vs_trl_figure(tmp: Path, quick: bool, seed: int = 0) -> dict[str, Any]:
    n = 128 if quick else 512
    opts = {"bs": 8, "max_len": 512, "lora_r": 8, "seed": seed, "threads": torch_threads()}
    p1, _ = make_pair(tmp, SIZE)
    train_file = write_train_file(tmp / "trl_data", n)
    ours = run_ours(p1, train_file, tmp / "trl_ours", opts)
    trl = run_trl(p1, train_file, tmp / "trl_trl", opts)
    ratio = ours["tokens_per_s"] / trl["tokens_per_s"]
    profile = None
    if ratio < 1.0:  # we lose: where our run's time goes (cProfile of a repeat of the same run)
        prof = tmp / "trl_ours.prof"
        try:
            run_ours(p1, train_file, tmp / "trl_ours_prof", opts, profile=prof)
            profile = profile_top(prof)
        except (RuntimeError, OSError) as exc:  # the figure stands without its profile; say why it is missing
            profile = [{"error": str(exc)}]
    cpu_ratio = (trl["loop_cpu_s"] / trl["tokens"]) / (ours["process_cpu_s"] / ours["tokens"])
    return figure("vs_trl_sft", round(ratio, 3), 1.0, ">=", unit="x tokens/s (ours / TRL SFTTrainer)",
                  inputs={"paths": n, "source": "gsm8k train solutions", **opts, "epochs": 1, "lora": "r 8, alpha 32, "
                          "dropout 0.05, all-linear", "student": f"tiny llama {SIZE} (BPE, vocab 4096)",
                          "loss": "completion only (both)", "gradient_checkpointing": False},
                  ours=ours, trl=trl, ours_profile_top=profile,
                  cpu_per_token_trl_over_ours_process=round(cpu_ratio, 3),
                  note="ours' CPU covers the whole process (start-up, tokenisation, checkpoint), TRL's only its loop")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child-trl":
        sys.exit(child_trl(sys.argv[2]))
    print(__doc__)
    sys.exit(2)
