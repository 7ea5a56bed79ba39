#!/usr/bin/env python
"""Train two LoRA students on a teacher's verified reasoning paths.

    accelerate launch [--config_file launch/accelerate/X.yaml] launch/train_moe.py \\
        --task gsm8k --model1 PATH_OR_NAME --model2 PATH_OR_NAME --epochs 3 --bs 4 --outdir runs/gsm8k

or ``--config launch/configs/NAME.yaml`` (same keys; flags override). Also runs as a plain
``python launch/train_moe.py ...`` (one process). ``--help`` lists every option.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from distill.errors import DistillError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from distill.train.config import parse_train_args

    try:
        cfg = parse_train_args(argv)
        from distill.train.engine import train

        summary = train(cfg)
    except DistillError as exc:
        print(f"train_moe.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train_moe.py: interrupted (resume with --resume_from latest)", file=sys.stderr)
        return 130
    import json

    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
