"""``python -m bigramlm`` (and ``torchrun -m bigramlm``) runs the CLI."""

import sys

from .cli import main

sys.exit(main())
