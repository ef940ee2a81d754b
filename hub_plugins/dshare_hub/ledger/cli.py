"""`dshare ledger init|verify|log`: manage and audit the embedded ledger file."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from cryptography import x509

from . import LedgerError
from .embedded import create_org
from .identity import IdentityError, check_org_name
from .store import connect
from .verify import verify
from .witness import fingerprint, read_trust, write_trust


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
        help="check every hash and signature, the organizations' checkpoints, and replay "
        "the log against the stored state",
        description="Exit 0 when the ledger is intact and extends every checkpoint given; "
        "otherwise print each problem with its log sequence number and exit 1.",
    )
    ver.add_argument("--db", required=True, type=Path, help="path of the ledger database")
    ver.add_argument(
        "--witness",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a broker's state directory (BrokerApp.data_dir), holding ledger-trust.json and "
        "ledger-checkpoints.jsonl; give one per organization. Without any, a deliberate "
        "rewrite cannot be detected",
    )
    ver.set_defaults(func=_run(cmd_verify))

    trust = sub.add_parser(
        "trust",
        help="let a broker accept entries signed by an organization's CA",
        description="Add ORG's CA certificate to the trust file in a broker's state "
        "directory; needed on every broker before a new organization's entries are accepted. "
        "A CA already trusted for ORG is never replaced.",
    )
    trust.add_argument(
        "--witness",
        required=True,
        type=Path,
        metavar="DIR",
        help=("the broker's state directory (BrokerApp.data_dir)"),
    )
    trust.add_argument("--org", required=True, help="organization id, e.g. UiB")
    trust.add_argument("--ca", required=True, type=Path, help="PEM file of ORG's CA certificate")
    trust.set_defaults(func=_run(cmd_trust))

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
        except (IdentityError, FileNotFoundError, LedgerError) as exc:
            print(f"dshare ledger: {exc}", file=sys.stderr)
            return 2

    return handler


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    identity = create_org(args.db, args.org, identity_dir=args.dir)
    print(f"organization {identity.msp_id}: identity in {identity.directory}", file=out)
    print(f"its CA is registered on {args.db}", file=out)
    return 0


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    report = verify(args.db, args.witness)
    for warning in report.warnings:
        print(f"warning: {warning}", file=out)
    if report.ok:
        seen = (
            f"; extends {report.checkpoints} checkpoints of {', '.join(report.witnesses)}"
            if report.witnesses
            else ""
        )
        print(f"OK: {report.entries} entries, head {report.head_hash}{seen}", file=out)
        return 0
    print(
        f"TAMPERED: {len(report.problems)} problem(s) in {report.entries} entries; "
        f"first at sequence {report.first_bad_seq}",
        file=out,
    )
    for problem in report.problems:
        print(f"  {problem}", file=out)
    return 1


def cmd_trust(args: argparse.Namespace, out: TextIO) -> int:
    org, cert_pem, orgs = read_trust(args.witness)
    try:
        ca = args.ca.read_text(encoding="ascii")
        x509.load_pem_x509_certificate(ca.encode())
    except (OSError, ValueError) as exc:
        raise IdentityError(f"{args.ca} is not a readable PEM certificate: {exc}") from None
    check_org_name(args.org)
    have = orgs.get(args.org)
    if have is not None and have != ca:
        raise IdentityError(
            f"{args.witness} already trusts another CA for '{args.org}' ({fingerprint(have)}); "
            "a trusted CA is never replaced"
        )
    orgs[args.org] = ca
    write_trust(args.witness, org, cert_pem, orgs)
    print(f"{org}'s broker now trusts {args.org} (CA {fingerprint(ca)})", file=out)
    return 0


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
        p, done = entry["proposal"], entry["endorsement"]
        event = done["event"][0] if done.get("event") else "-"
        print(
            f"{seq:>8}  {p['timestamp']}  {p['msp_id']}/{p['actor']}  {p['fn']}  "
            f"event={event}  writes={len(done['writes'])}  tx={p['tx_id'][:16]}  "
            f"hash={digest[:16]}",
            file=out,
        )
    return 0
