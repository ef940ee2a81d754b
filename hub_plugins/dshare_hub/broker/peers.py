"""Requests between organizations' brokers, signed with the org's ledger identity.

A lessee org's broker asks the owner org's broker to materialize a leased dataset for a
run. The owner cannot take the lessee's word for anything: the request is signed (ECDSA
P-256 over canonical JSON) with the lessee org's key, its certificate must chain to that
org's CA as registered on the ledger, it must be fresh (timestamp window) and new (nonce
store), and the lease and run are then checked on the ledger itself.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import DateTime, String, delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..ledger.identity import IdentityError, check_chain, verify_signature
from .errors import ApiError

PAYLOAD_FIELDS = ("lease_id", "nonce", "org", "run_id", "timestamp", "to", "user")


def canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Signer:
    """Signs broker-to-broker requests with an org's ledger identity (an `OrgIdentity`)."""

    def __init__(self, identity: Any) -> None:
        self.org: str = identity.msp_id
        self.cert_pem: str = identity.cert_pem
        self._identity = identity

    def __repr__(self) -> str:
        return f"Signer(org={self.org!r})"

    def sign(self, *, to: str, lease_id: str, run_id: str, user: str) -> dict[str, Any]:
        payload = {
            "to": to,
            "lease_id": lease_id,
            "run_id": run_id,
            "user": user,
            "org": self.org,
            "timestamp": int(dt.datetime.now(dt.UTC).timestamp()),
            "nonce": secrets.token_urlsafe(18),
        }
        signature = self._identity.sign(canonical(payload))
        return {
            "payload": payload,
            "signature": base64.b64encode(signature).decode("ascii"),
            "certificate": self.cert_pem,
        }


class _Base(DeclarativeBase):
    pass


class NonceRow(_Base):
    __tablename__ = "dshare_peer_nonces"

    org: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class NonceStore:
    """Nonces seen within the freshness window, kept in the broker's database so a restart
    does not reopen the window for replays."""

    def __init__(self, engine: Engine, window_s: int) -> None:
        self.engine = engine
        self.window_s = window_s
        _Base.metadata.create_all(engine)

    def remember(self, org: str, nonce: str, now: dt.datetime) -> bool:
        """True the first time (org, nonce) is seen within the window, False on a replay."""
        with Session(self.engine) as session:
            session.execute(delete(NonceRow).where(NonceRow.expires_at < now))
            # Twice the window: a timestamp may be up to one window in the future.
            expires = now + dt.timedelta(seconds=2 * self.window_s)
            session.add(NonceRow(org=org, nonce=nonce, expires_at=expires))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
            return True


def _refuse(message: str, code: str = "SIGNATURE_INVALID") -> ApiError:
    return ApiError(code, message)


async def verify_signed(
    envelope: Any,
    *,
    me: str,
    ca_for_org: Callable[[str], Awaitable[str | None]],
    nonces: NonceStore,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The verified payload of a peer request, or ApiError saying why it is refused."""
    now = now or dt.datetime.now(dt.UTC)
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "signature", "certificate"}:
        raise _refuse("a peer request must be {payload, signature, certificate}")
    payload = envelope["payload"]
    if not isinstance(payload, dict) or tuple(sorted(payload)) != PAYLOAD_FIELDS:
        raise _refuse(f"the signed payload must hold exactly {', '.join(PAYLOAD_FIELDS)}")
    for name in PAYLOAD_FIELDS:
        expected = int if name == "timestamp" else str
        if not isinstance(payload[name], expected) or isinstance(payload[name], bool):
            raise _refuse(f"payload.{name} has the wrong type")
    if payload["to"] != me:
        raise _refuse(f"the request is addressed to {payload['to']!r}, not to {me!r}")
    try:
        signature = base64.b64decode(str(envelope["signature"]), validate=True)
    except (ValueError, binascii.Error):
        raise _refuse("the signature is not base64") from None
    ca_pem = await ca_for_org(payload["org"])
    if ca_pem is None:
        raise _refuse(f"organization {payload['org']!r} has no CA registered on the ledger")
    try:
        cert = check_chain(str(envelope["certificate"]), ca_pem, payload["org"], now)
    except IdentityError as error:
        raise _refuse(str(error)) from None
    if not verify_signature(cert, signature, canonical(payload)):
        raise _refuse("the signature does not match the payload")
    age = now.timestamp() - payload["timestamp"]
    if abs(age) > nonces.window_s:
        raise _refuse(
            f"the request is {int(age)} s old; requests are accepted within "
            f"{nonces.window_s} s (check the clocks of both brokers)",
            "STALE_REQUEST",
        )
    if not nonces.remember(payload["org"], payload["nonce"], now):
        raise _refuse("this request was already received (replay refused)", "REPLAYED")
    return payload


async def send_peer_mount(
    base: str,
    envelope: dict[str, Any],
    *,
    owner: str,
    timeout_s: float,
    path: str = "api/v1/peer/mounts",
) -> dict[str, Any]:
    """Ask `owner`'s broker at `base` for a mount (or, at `path` api/v1/peer/views, an
    interactive view); its refusal comes back as its own."""
    request = HTTPRequest(
        f"{base.rstrip('/')}/{path}",
        method="POST",
        body=json.dumps(envelope),
        headers={"Content-Type": "application/json"},
        request_timeout=timeout_s,
    )
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as error:
        body = error.response.body if error.response is not None else b""
        try:
            problem = json.loads(body)
            code, message = str(problem["code"]), str(problem["message"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                "PEER_UNAVAILABLE", f"the broker of {owner} failed ({error.code})"
            ) from None
        raise ApiError(code, f"the broker of {owner} refused: {message}") from None
    except OSError:
        raise ApiError("PEER_UNAVAILABLE", f"the broker of {owner} cannot be reached") from None
    mount: dict[str, Any] = json.loads(response.body)
    return mount
