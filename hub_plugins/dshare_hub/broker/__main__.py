"""`python -m dshare_hub.broker --org UiS --config FILE`: the broker without the whole CLI."""

from __future__ import annotations

import argparse
import logging
import sys

from .cli import add_broker_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dshare_hub.broker")
    add_broker_commands(parser.add_subparsers())
    args = parser.parse_args(["broker", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
