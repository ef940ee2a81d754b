"""`dshare demo`: the embedded deployment with three organizations and sample data."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from .content import ORGS
from .deployment import Deployment
from .layout import DemoLayout
from .seed import SeedError


def add_demo_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the embedded deployment: JupyterHub, three organizations, sample data",
        description=(
            "Start JupyterHub with the embedded ledger, one broker per organization "
            f"({', '.join(ORGS)}), their users and sample datasets. State is kept in the "
            "data directory across restarts. Ctrl-C stops everything this command started."
        ),
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".dshare"),
        help="where the ledger, keys, users and sample data live (default: ./.dshare)",
    )
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="public port (default 8000)")
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    layout = DemoLayout(root=args.data_dir.resolve(), ip=args.ip, port=args.port)
    deployment = Deployment(layout)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        deployment.start()
        print(f"\ndshare is running at {layout.public_url}\n")
        print(f"Demo logins (user  password), also in {layout.logins_file}:")
        print(layout.logins_file.read_text())
        print("Press Ctrl-C to stop.", flush=True)
        assert deployment.process is not None
        return deployment.process.wait()
    except KeyboardInterrupt:
        print("\nstopping dshare ...", file=sys.stderr)
        return 0
    except (RuntimeError, SeedError) as e:
        print(f"dshare demo: {e}", file=sys.stderr)
        return 1
    finally:
        deployment.stop()
