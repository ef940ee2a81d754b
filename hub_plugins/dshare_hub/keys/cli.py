"""`dshare keys …`: create a KEK, show which KEK wraps how many keys, rotate the KEK.

Rotation without downtime, step by step (the broker re-reads its KEK file when it changes):
1. `dshare keys generate-kek --prepend FILE` puts a new current KEK in front of the old one;
2. `dshare keys rotate --keystore-url URL --kek-file FILE` re-wraps every data key;
3. once `dshare keys status` shows nothing under the old KEK, delete its line from FILE.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import KeyServiceError
from .kek import KekSource, generate_kek_line
from .service import KeyService
from .store import KeyStore


def _add_source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keystore-url",
        required=True,
        help="SQLAlchemy URL of the broker's key store, e.g. sqlite:////srv/dshare/keys.sqlite",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--kek-file", default="", help="file holding the KEKs, current first")
    group.add_argument("--kek-env", default="", help="environment variable holding the KEKs")


def _service(args: argparse.Namespace) -> KeyService:
    return KeyService(
        KeyStore(args.keystore_url), KekSource(kek_file=args.kek_file, kek_env=args.kek_env)
    )


def _generate(args: argparse.Namespace) -> int:
    line = generate_kek_line()
    if not args.out and not args.prepend:
        print(line)
        return 0
    if args.out:
        path = Path(args.out)
        if path.exists():
            print(f"error: {path} exists; use --prepend to rotate in a new KEK", file=sys.stderr)
            return 1
        old = ""
    else:
        path = Path(args.prepend)
        if not path.exists():
            print(f"error: {path} does not exist; use --out to create it", file=sys.stderr)
            return 1
        old = path.read_text(encoding="ascii")
    # Write next to the target and rename: a crash never leaves a half-written KEK file.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(line + "\n" + old)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    print(f"wrote a new current KEK to {path}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    try:
        report = _service(args).rotate()
    except KeyServiceError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    print(
        f"re-wrapped {report.rewrapped} data key(s) under KEK {report.kek_id}"
        + (f"; {report.skipped} changed meanwhile, run again" if report.skipped else "")
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        service = _service(args)
        current = service.kek_source.keyring().current.kek_id
    except KeyServiceError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    counts = service.store.count_by_kek()
    print(f"current KEK: {current}")
    for kek_id, count in sorted(counts.items()):
        marker = " (current)" if kek_id == current else ""
        print(f"{kek_id}{marker}: {count} data key(s)")
    return 0


def add_keys_commands(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="manage the organization's key-encryption key")
    sub = keys.add_subparsers(title="keys commands", metavar="COMMAND", required=True)

    generate = sub.add_parser("generate-kek", help="create a random 256-bit KEK")
    where = generate.add_mutually_exclusive_group()
    where.add_argument("--out", default="", help="write a new KEK file (mode 0600)")
    where.add_argument("--prepend", default="", help="put a new current KEK in front of FILE")
    generate.set_defaults(func=_generate)

    rotate = sub.add_parser("rotate", help="re-wrap every data key under the current KEK")
    _add_source_args(rotate)
    rotate.set_defaults(func=_rotate)

    status = sub.add_parser("status", help="how many data keys each KEK wraps")
    _add_source_args(status)
    status.set_defaults(func=_status)
