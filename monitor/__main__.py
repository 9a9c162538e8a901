"""``python -m monitor``: read the settings and run the dashboard."""

from __future__ import annotations

import logging
import sys

from monitor.server import run_monitor
from pipeline.config import ConfigurationError, load_settings


def main() -> int:
    """Entry point; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    run_monitor(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
