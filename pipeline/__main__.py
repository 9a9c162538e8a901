"""``python -m pipeline worker`` and friends: the same as the ``fraud`` command."""

import sys

from pipeline.tools.cli import main

sys.exit(main())
