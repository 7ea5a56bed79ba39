#!/usr/bin/env python
"""Old entry point, kept for scripts: ``accelerate launch launch/train_moe.py ARGS`` = ``distill train ARGS``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install
from distill.commands.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="train_moe.py"))
