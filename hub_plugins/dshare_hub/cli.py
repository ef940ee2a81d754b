"""The `dshare` command line.

Each area of dshare owns its subcommands and registers them here through an
`add_*_commands(subparsers)` function, so this module only decides the order they are
listed in. A subcommand stores its handler as `func` on the parsed namespace; the handler
returns the process exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__

# command -> (module, function). Only the module of the command being run is imported (all
# of them for --help), so `dshare broker` does not pay for the workflow compiler's imports
# and a missing optional dependency only breaks the command that needs it.
COMMAND_PROVIDERS: dict[str, tuple[str, str]] = {
    "demo": ("dshare_hub.demo.cli", "add_demo_commands"),
    "run": ("dshare_server.workflow.cli", "add_run_command"),
    "broker": ("dshare_hub.broker.cli", "add_broker_commands"),
    "ledger": ("dshare_hub.ledger.cli", "add_ledger_commands"),
    "keys": ("dshare_hub.keys.cli", "add_keys_commands"),
    "users": ("dshare_hub.auth.cli", "add_users_commands"),
}


def _providers(argv: Sequence[str] | None) -> list[tuple[str, str]]:
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    if words and words[0] in COMMAND_PROVIDERS:
        return [COMMAND_PROVIDERS[words[0]]]
    return list(COMMAND_PROVIDERS.values())


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dshare",
        description=(
            "Share datasets between organizations that do not trust each other: run the "
            "embedded deployment, the per-organization broker, workflows, and manage the "
            "ledger, keys and users."
        ),
    )
    parser.add_argument("--version", action="version", version=f"dshare {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log on standard error (default: INFO)",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module_name, function_name in _providers(argv):
        module = importlib.import_module(module_name)
        getattr(module, function_name)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
