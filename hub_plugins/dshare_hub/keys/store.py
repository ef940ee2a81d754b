"""The wrapped-data-key table, through SQLAlchemy 2 (SQLite by default, PostgreSQL in production).

Only wrapped keys live here: a row is useless without the organization's KEK, which never
enters the database. Crypto-shredding keeps a tombstone row (no key bytes) so that a later
open attempt can say "destroyed" instead of "unknown", and so a retired asset id can
never get a fresh key that would make old ciphertext look current.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    LargeBinary,
    String,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .errors import KeyServiceError


class _Base(DeclarativeBase):
    pass


class DataKeyRow(_Base):
    __tablename__ = "dshare_data_keys"

    asset_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_org: Mapped[str] = mapped_column(String(128))
    kek_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    shredded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class StoredKey:
    asset_id: str
    version: int
    owner_org: str
    kek_id: str | None
    wrapped: bytes | None
    shredded: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets settings that make shredding and concurrency safe."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            # Overwrite freed pages, so a shredded key does not linger in the file.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    return engine


class KeyStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def add(self, asset_id: str, owner_org: str, make_wrapped: Any) -> tuple[int, str]:
        """Store a new key version for `asset_id`; `make_wrapped(version)` -> (kek_id, wrapped).

        Versions count up per asset; two brokers racing for the same version both try to
        insert the same primary key, the loser retries with the next one.
        """
        for _attempt in range(8):
            with Session(self.engine) as session:
                rows = session.execute(
                    select(DataKeyRow.version, DataKeyRow.shredded_at).where(
                        DataKeyRow.asset_id == asset_id
                    )
                ).all()
                if any(row.shredded_at is not None for row in rows):
                    raise KeyServiceError(
                        "KEY_DESTROYED",
                        f"the keys of asset {asset_id!r} were destroyed when it was retired; "
                        "a retired asset cannot be sealed again, register a new one",
                    )
                version = max((row.version for row in rows), default=0) + 1
                kek_id, wrapped = make_wrapped(version)
                session.add(
                    DataKeyRow(
                        asset_id=asset_id,
                        version=version,
                        owner_org=owner_org,
                        kek_id=kek_id,
                        wrapped=wrapped,
                        created_at=_now(),
                    )
                )
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    continue
                return version, kek_id
        raise KeyServiceError(
            "KEY_CONFLICT", f"could not allocate a key version for {asset_id!r}; retry"
        )

    def get(self, asset_id: str, version: int) -> StoredKey | None:
        with Session(self.engine) as session:
            row = session.get(DataKeyRow, (asset_id, version))
            if row is None:
                return None
            return StoredKey(
                row.asset_id,
                row.version,
                row.owner_org,
                row.kek_id,
                row.wrapped,
                row.shredded_at is not None,
            )

    def shred(self, asset_id: str) -> int:
        """Destroy every key version of `asset_id`; returns how many held key bytes."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                update(DataKeyRow)
                .where(DataKeyRow.asset_id == asset_id, DataKeyRow.shredded_at.is_(None))
                .values(wrapped=None, kek_id=None, shredded_at=_now())
            )
            count = int(getattr(result, "rowcount", 0) or 0)
            if count == 0:
                exists = session.scalar(
                    select(func.count())
                    .select_from(DataKeyRow)
                    .where(DataKeyRow.asset_id == asset_id)
                )
                if not exists:
                    # A tombstone even for an asset that never had keys: nothing may be
                    # sealed under this id afterwards.
                    session.add(
                        DataKeyRow(
                            asset_id=asset_id,
                            version=0,
                            owner_org="",
                            kek_id=None,
                            wrapped=None,
                            created_at=_now(),
                            shredded_at=_now(),
                        )
                    )
            return count

    def discard(self, asset_id: str, version: int) -> None:
        """Forget one key version whose seal was never accepted by the ledger."""
        with Session(self.engine) as session, session.begin():
            row = session.get(DataKeyRow, (asset_id, version))
            if row is not None and row.shredded_at is None:
                session.delete(row)

    def keys_not_under(self, kek_id: str) -> Iterator[StoredKey]:
        """Live keys wrapped under another KEK, read in pages so a big table streams."""
        last: tuple[str, int] = ("", -1)
        while True:
            with Session(self.engine) as session:
                rows = session.scalars(
                    select(DataKeyRow)
                    .where(
                        DataKeyRow.shredded_at.is_(None),
                        DataKeyRow.kek_id != kek_id,
                        (DataKeyRow.asset_id > last[0])
                        | ((DataKeyRow.asset_id == last[0]) & (DataKeyRow.version > last[1])),
                    )
                    .order_by(DataKeyRow.asset_id, DataKeyRow.version)
                    .limit(500)
                ).all()
                batch = [
                    StoredKey(r.asset_id, r.version, r.owner_org, r.kek_id, r.wrapped, False)
                    for r in rows
                ]
            if not batch:
                return
            yield from batch
            last = (batch[-1].asset_id, batch[-1].version)

    def replace_wrapped(self, key: StoredKey, new_kek_id: str, new_wrapped: bytes) -> bool:
        """Compare-and-set: swap in the re-wrapped key only if nobody changed the row since."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                update(DataKeyRow)
                .where(
                    DataKeyRow.asset_id == key.asset_id,
                    DataKeyRow.version == key.version,
                    DataKeyRow.kek_id == key.kek_id,
                    DataKeyRow.shredded_at.is_(None),
                )
                .values(kek_id=new_kek_id, wrapped=new_wrapped)
            )
            return bool(getattr(result, "rowcount", 0))

    def count_by_kek(self) -> dict[str, int]:
        with Session(self.engine) as session:
            rows = session.execute(
                select(DataKeyRow.kek_id, func.count())
                .where(DataKeyRow.shredded_at.is_(None))
                .group_by(DataKeyRow.kek_id)
            ).all()
            return {str(kek_id): int(n) for kek_id, n in rows}
