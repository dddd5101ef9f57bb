"""``python -m labelkit``: the CLI; ``python -m labelkit --report`` describes this installation."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
