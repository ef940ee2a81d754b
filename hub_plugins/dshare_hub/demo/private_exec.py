"""`python -m dshare_hub.demo.private_exec PROGRAM ARGS...`: run PROGRAM with umask 077.

The embedded deployment starts each broker and the hub through this, so every file a
broker creates in its state directory after provisioning (key store, mounts, caches),
and the hub in its own (its database), is its own alone, as the files provisioning made
are. (SQLite still gives the shared ledger's WAL files the database's own 0660.)
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m dshare_hub.demo.private_exec PROGRAM [ARGS...]")
    os.umask(0o077)
    os.execv(sys.argv[1], sys.argv[1:])  # noqa: S606 - the argv is the hub config's own


if __name__ == "__main__":
    main()
