"""``python -m pyterrier_gaia demo`` is the same as ``gaia demo``."""
import sys

from .cli import main

sys.exit(main())
