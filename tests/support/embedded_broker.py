"""One organization's broker as the unit suites build it: real app, embedded ledger, a
fresh KEK, everything under one temporary directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dshare_hub.broker.app import BrokerApp
from dshare_hub.keys.kek import generate_kek_line


def broker_app(top: Path, org: str = "UiS", **traits: Any) -> BrokerApp:
    """`org`'s BrokerApp with its data dir, ledger and identities under `top`; open its
    ledger with `EmbeddedLedger.open(app.ledger_db, app.identity_dir, org)`."""
    kek = top / "kek"
    kek.write_text(generate_kek_line() + "\n")
    return BrokerApp(
        org=org,
        data_dir=str(top / "broker"),
        ledger_db=str(top / "ledger.sqlite"),
        identity_dir=str(top / "identities"),
        kek_file=str(kek),
        **traits,
    )
