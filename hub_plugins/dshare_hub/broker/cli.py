"""`dshare broker --org UiS [--config FILE]`: run one organization's broker."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from .app import BrokerApp

    app = BrokerApp()
    if args.config:
        app.config_file = args.config
        app.load_config_file(args.config)
    if args.org:
        app.org = args.org
    app.config_file = ""
    app.start()
    return 0


def add_broker_commands(subparsers: argparse._SubParsersAction) -> None:
    broker = subparsers.add_parser(
        "broker", help="run an organization's broker (normally started by JupyterHub)"
    )
    broker.add_argument("--org", default="", help="the organization, e.g. UiS")
    broker.add_argument("--config", default="", help="a Python config file (c.BrokerApp.…)")
    broker.set_defaults(func=_run)
