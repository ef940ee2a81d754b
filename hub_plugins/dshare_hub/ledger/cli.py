"""`dshare ledger init|verify|log`: manage and audit the embedded ledger file."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .embedded import create_org
from .identity import IdentityError
from .store import connect
from .verify import verify


def add_ledger_commands(subparsers: argparse._SubParsersAction) -> None:
    ledger = subparsers.add_parser(
        "ledger",
        help="create organizations on, verify and read the embedded ledger",
        description="Manage the embedded SQLite ledger: organizations, verification, the log.",
    )
    ledger.set_defaults(func=lambda args: _usage(ledger))
    sub = ledger.add_subparsers(title="ledger commands", metavar="ACTION")

    init = sub.add_parser(
        "init",
        help="create an organization's CA and identity and register the CA on the ledger",
        description=(
            "Create the ledger file if needed, make ORG's local CA and signing identity "
            "(private keys written 0600) and register the CA, also on a running ledger."
        ),
    )
    init.add_argument("--db", required=True, type=Path, help="path of the ledger database")
    init.add_argument("--org", required=True, help="organization id, e.g. UiS")
    init.add_argument(
        "--dir",
        type=Path,
        help="directory for identity files (default: identities/ next to the database)",
    )
    init.set_defaults(func=_run(cmd_init))

    ver = sub.add_parser(
        "verify",
        help="check every hash and signature and replay the log against the stored state",
        description="Exit 0 when the ledger is intact; otherwise print each problem with "
        "its log sequence number and exit 1.",
    )
    ver.add_argument("--db", required=True, type=Path, help="path of the ledger database")
    ver.set_defaults(func=_run(cmd_verify))

    log = sub.add_parser("log", help="print the transaction log, oldest first")
    log.add_argument("--db", required=True, type=Path, help="path of the ledger database")
    log.add_argument("--tail", type=int, metavar="N", help="only the last N entries")
    log.set_defaults(func=_run(cmd_log))


def _usage(parser: argparse.ArgumentParser) -> int:
    print(parser.format_usage().strip(), file=sys.stderr)
    return 2


def _run(cmd: Callable[[argparse.Namespace, TextIO], int]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            return cmd(args, sys.stdout)
        except (IdentityError, FileNotFoundError) as exc:
            print(f"dshare ledger: {exc}", file=sys.stderr)
            return 2

    return handler


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    identity = create_org(args.db, args.org, identity_dir=args.dir)
    print(f"organization {identity.msp_id}: identity in {identity.directory}", file=out)
    print(f"its CA is registered on {args.db}", file=out)
    return 0


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    report = verify(args.db)
    if report.ok:
        print(f"OK: {report.entries} entries, head {report.head_hash}", file=out)
        return 0
    print(
        f"TAMPERED: {len(report.problems)} problem(s) in {report.entries} entries; "
        f"first at sequence {report.first_bad_seq}",
        file=out,
    )
    for problem in report.problems:
        print(f"  {problem}", file=out)
    return 1


def cmd_log(args: argparse.Namespace, out: TextIO) -> int:
    if args.tail is not None and args.tail < 1:
        print("dshare ledger log: --tail must be at least 1", file=sys.stderr)
        return 2
    if not args.db.is_file():
        raise FileNotFoundError(f"no ledger database at {args.db}")
    conn = connect(args.db, readonly=True)
    try:
        if args.tail:
            sql = "SELECT * FROM (SELECT seq, body, hash FROM txlog ORDER BY seq DESC LIMIT ?) "
            rows = conn.execute(sql + "ORDER BY seq", (args.tail,)).fetchall()
        else:
            rows = conn.execute("SELECT seq, body, hash FROM txlog ORDER BY seq").fetchall()
    finally:
        conn.close()
    for seq, body, digest in rows:
        entry = json.loads(body)
        p = entry["proposal"]
        event = entry["event"][0] if entry.get("event") else "-"
        print(
            f"{seq:>8}  {p['timestamp']}  {p['msp_id']}/{p['actor']}  {p['fn']}  "
            f"event={event}  writes={len(entry['writes'])}  tx={p['tx_id'][:16]}  "
            f"hash={digest[:16]}",
            file=out,
        )
    return 0
