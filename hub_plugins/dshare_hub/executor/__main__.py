"""`python -m dshare_hub.executor --config FILE`: the executor as a hub-managed service."""

from __future__ import annotations

import logging
import sys

from .app import Executor


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Executor()
    app.initialize(sys.argv[1:] if argv is None else argv)
    app.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
