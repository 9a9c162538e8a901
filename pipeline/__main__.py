"""``python -m pipeline worker`` and friends: the same as the ``fraud`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
