"""``python -m distill.commands ARGS`` = ``distill ARGS`` (what the demo's stages run)."""

import sys

from distill.commands import main

sys.exit(main())
