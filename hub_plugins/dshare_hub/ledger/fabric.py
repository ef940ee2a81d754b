"""A `Ledger` on Hyperledger Fabric, speaking the peer's Gateway gRPC service.

Evaluate runs a read-only proposal on one peer. Submit asks the gateway to endorse, signs
the prepared transaction, submits it to ordering and waits for its commit status, so a
submit returns only once the transaction is valid on the ledger (or raises why not).
The user the broker acts for travels in the proposal's transient map under ``actor``; the
contract decides what of it to record (Fabric never orders the transient map itself).

The connection is TLS unless the profile says ``"plaintext": true`` (a local test peer
only), which logs a warning each time a connection is opened. The proposal's timestamp is
this machine's clock (or the `clock` a test gives); the chaincode refuses one too far from
the endorsing peers' clocks (CLOCK_SKEW, see dshare_chaincode.clock).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from fabric_protos.gateway import gateway_pb2 as _gateway_pb2
from fabric_protos.gateway import gateway_pb2_grpc as _gateway_pb2_grpc

from . import Ledger, LedgerError
from .fabric_errors import LEDGER_ERROR, map_commit_status, map_rpc_error
from .fabric_proposal import (
    IdentityError,
    Signer,
    build_proposal,
    chaincode_events_request,
    commit_status_request,
    endorsing_orgs,
    sign_envelope,
    sign_proposal,
    transaction_result,
)

# The generated protobuf modules carry no type information (py.typed, no stubs).
gateway_pb2: Any = _gateway_pb2
gateway_pb2_grpc: Any = _gateway_pb2_grpc

INVALID_ARGUMENT = "INVALID_ARGUMENT"

LOG = logging.getLogger("dshare_hub.ledger.fabric")

NO_TLS = (
    "connection profile: field 'tls_root_cert_path' (or tls_root_cert_pem) is required (CA "
    "certificate of the peer's TLS); only a local test peer may go without TLS, with "
    '"plaintext": true'
)


class FabricConfigError(ValueError):
    """The connection profile is incomplete or points at unusable files."""


@dataclass(frozen=True)
class FabricProfile:
    """Where one organization's broker reaches its gateway peer, and as whom.

    `tls_root_cert` is required unless `plaintext` is set, which only a local test peer
    should use. `channel_organizations` (the channel's MSP ids) is optional: it lets an
    endorsement failure say how many organizations the channel's MAJORITY needs.
    """

    peer_endpoint: str
    msp_id: str
    cert_pem: bytes
    key_path: Path
    channel: str
    chaincode: str
    tls_root_cert: bytes | None = None
    # The name in the peer's TLS certificate when the endpoint address differs (port-forwards,
    # docker-compose service names), like the Fabric samples' `gatewayPeer` override.
    tls_server_name: str | None = None
    plaintext: bool = False
    channel_organizations: tuple[str, ...] = ()
    evaluate_timeout_s: float = 10.0
    endorse_timeout_s: float = 30.0
    submit_timeout_s: float = 10.0
    commit_timeout_s: float = 60.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base_dir: Path | None = None) -> FabricProfile:
        """Build from a parsed profile (YAML/JSON/traitlets dict); relative paths from base_dir.

        Keys: peer_endpoint, msp_id, channel, chaincode, key_path, cert_path or cert_pem,
        tls_root_cert_path or tls_root_cert_pem (required unless "plaintext": true),
        tls_server_name, channel_organizations, and optional *_timeout_s.
        """
        base = base_dir or Path.cwd()
        known = {
            "peer_endpoint",
            "msp_id",
            "channel",
            "chaincode",
            "key_path",
            "cert_path",
            "cert_pem",
            "tls_root_cert_path",
            "tls_root_cert_pem",
            "tls_server_name",
            "plaintext",
            "channel_organizations",
            "evaluate_timeout_s",
            "endorse_timeout_s",
            "submit_timeout_s",
            "commit_timeout_s",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise FabricConfigError(
                f"connection profile: unknown field {unknown[0]!r}; "
                f"expected one of {', '.join(sorted(known))}"
            )

        def text(name: str, hint: str) -> str:
            value = data.get(name)
            if not isinstance(value, str) or not value.strip():
                raise FabricConfigError(f"connection profile: field {name!r} is required ({hint})")
            return value.strip()

        def read(name: str, path_text: str) -> bytes:
            path = Path(path_text)
            path = path if path.is_absolute() else base / path
            try:
                return path.read_bytes()
            except OSError as exc:
                raise FabricConfigError(
                    f"connection profile: field {name!r}: cannot read {path} ({exc.strerror})"
                ) from None

        def pem(name: str, hint: str, *, required: bool) -> bytes | None:
            inline, path_key = data.get(f"{name}_pem"), f"{name}_path"
            if isinstance(inline, str) and inline.strip():
                return inline.encode()
            if data.get(path_key) is not None:
                return read(path_key, text(path_key, hint))
            if required:
                raise FabricConfigError(
                    f"connection profile: field {path_key!r} (or {name}_pem) is required ({hint})"
                )
            return None

        def seconds(name: str, default: float) -> float:
            value = data.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise FabricConfigError(
                    f"connection profile: field {name!r} must be a positive number of seconds"
                )
            return float(value)

        endpoint = text("peer_endpoint", "host:port of the organization's gateway peer")
        host, _, port = endpoint.rpartition(":")
        if not host or not port.isdigit():
            raise FabricConfigError(
                f"connection profile: field 'peer_endpoint' must be host:port, got {endpoint!r}"
            )
        key_path = Path(text("key_path", "PEM private key of the organization's client identity"))
        server_name = data.get("tls_server_name")
        if server_name is not None and (not isinstance(server_name, str) or not server_name):
            raise FabricConfigError(
                "connection profile: field 'tls_server_name' must be a host name"
            )
        msp_id = text("msp_id", "the organization's MSP id, e.g. UiSMSP")
        plaintext = data.get("plaintext", False)
        if not isinstance(plaintext, bool):
            raise FabricConfigError("connection profile: field 'plaintext' must be true or false")
        tls_root_cert = pem("tls_root_cert", "CA certificate of the peer's TLS", required=False)
        if plaintext:
            tls_fields = ("tls_root_cert_path", "tls_root_cert_pem", "tls_server_name")
            given = [k for k in tls_fields if data.get(k) is not None]
            if given:
                raise FabricConfigError(
                    f"connection profile: field 'plaintext' is true but {given[0]!r} is set "
                    "too: remove one of them"
                )
        elif tls_root_cert is None:
            raise FabricConfigError(NO_TLS)
        members = data.get("channel_organizations", [])
        if (
            not isinstance(members, list)
            or not all(isinstance(m, str) and m for m in members)
            or len(set(members)) != len(members)
            or (members and msp_id not in members)
        ):
            raise FabricConfigError(
                "connection profile: field 'channel_organizations' must list the channel's "
                f"MSP ids once each, {msp_id!r} among them"
            )
        return cls(
            peer_endpoint=endpoint,
            msp_id=msp_id,
            channel=text("channel", "the channel the dshare chaincode is deployed on"),
            chaincode=text("chaincode", "the chaincode name, e.g. dshare"),
            cert_pem=pem(
                "cert", "PEM certificate of the organization's client identity", required=True
            )
            or b"",
            key_path=key_path if key_path.is_absolute() else base / key_path,
            tls_root_cert=tls_root_cert,
            tls_server_name=server_name,
            plaintext=plaintext,
            channel_organizations=tuple(members),
            evaluate_timeout_s=seconds("evaluate_timeout_s", 10.0),
            endorse_timeout_s=seconds("endorse_timeout_s", 30.0),
            submit_timeout_s=seconds("submit_timeout_s", 10.0),
            commit_timeout_s=seconds("commit_timeout_s", 60.0),
        )


@dataclass(frozen=True)
class LedgerEvent:
    """A chaincode event from a committed block."""

    block_number: int
    tx_id: str
    name: str
    payload: bytes


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FabricLedger(Ledger):
    """The contract on a Fabric channel, as one organization (its MSP identity)."""

    def __init__(
        self, profile: FabricProfile, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        """`clock` gives the proposals' timestamps (tests set it; never sleep for time)."""
        if not profile.plaintext and profile.tls_root_cert is None:
            raise FabricConfigError(NO_TLS)
        try:
            key_pem = profile.key_path.read_bytes()
        except OSError as exc:
            raise FabricConfigError(
                f"connection profile: field 'key_path': cannot read {profile.key_path} "
                f"({exc.strerror})"
            ) from None
        try:
            self._signer = Signer.from_pem(profile.msp_id, profile.cert_pem, key_pem)
        except IdentityError as exc:
            raise FabricConfigError(f"connection profile: {exc}") from None
        self.profile = profile
        self._clock = clock or _utc_now
        self._channel: grpc.aio.Channel | None = None
        self._gateway: gateway_pb2_grpc.GatewayStub | None = None

    @classmethod
    def from_config(
        cls,
        data: Mapping[str, Any],
        base_dir: Path | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> FabricLedger:
        return cls(FabricProfile.from_mapping(data, base_dir), clock=clock)

    def _stub(self) -> gateway_pb2_grpc.GatewayStub:
        # Created on first use so it binds to the running event loop, not the constructor's.
        if self._gateway is None:
            profile = self.profile
            if profile.plaintext:
                LOG.warning(
                    'connection profile sets "plaintext": true: the connection to the Fabric '
                    "gateway at %s is neither encrypted nor authenticated; use TLS for "
                    "anything but a local test peer",
                    profile.peer_endpoint,
                )
                self._channel = grpc.aio.insecure_channel(profile.peer_endpoint)
            else:
                options = []
                if profile.tls_server_name:
                    options.append(("grpc.ssl_target_name_override", profile.tls_server_name))
                self._channel = grpc.aio.secure_channel(
                    profile.peer_endpoint,
                    grpc.ssl_channel_credentials(root_certificates=profile.tls_root_cert),
                    options=options,
                )
            self._gateway = gateway_pb2_grpc.GatewayStub(self._channel)
        return self._gateway

    def _proposal(self, fn: str, args: tuple[str, ...], actor: str) -> Any:
        if not isinstance(fn, str) or not fn:
            raise LedgerError(INVALID_ARGUMENT, "the transaction name must be a non-empty string")
        for i, arg in enumerate(args, start=1):
            if not isinstance(arg, str):
                raise LedgerError(
                    INVALID_ARGUMENT,
                    f"argument {i} of {fn} must be a string (JSON for structured values), "
                    f"got {type(arg).__name__}",
                    key=f"args[{i}]",
                )
        if not isinstance(actor, str) or not actor:
            raise LedgerError(
                INVALID_ARGUMENT,
                "actor is required: name the user the broker acts for",
                key="actor",
            )
        return build_proposal(
            channel=self.profile.channel,
            chaincode=self.profile.chaincode,
            fn=fn,
            args=args,
            creator=self._signer.creator,
            transient={"actor": actor.encode()},
            timestamp=self._clock(),
        )

    def _rpc_error(self, exc: grpc.RpcError, action: str) -> LedgerError:
        return map_rpc_error(
            exc,
            action=action,
            endpoint=self.profile.peer_endpoint,
            gateway_org=self.profile.msp_id,
            organizations=self.profile.channel_organizations,
        )

    @staticmethod
    def _decode(fn: str, payload: bytes) -> Any:
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise LedgerError(
                LEDGER_ERROR, f"the chaincode's result for {fn} is not JSON; is it dshare's?"
            ) from None

    async def evaluate(self, fn: str, *args: str, actor: str) -> Any:
        proposal = self._proposal(fn, args, actor)
        request = gateway_pb2.EvaluateRequest(
            transaction_id=proposal.tx_id,
            channel_id=self.profile.channel,
            proposed_transaction=sign_proposal(self._signer, proposal),
        )
        try:
            response = await self._stub().Evaluate(request, timeout=self.profile.evaluate_timeout_s)
        except grpc.RpcError as exc:
            raise self._rpc_error(exc, f"evaluate {fn}") from None
        return self._decode(fn, response.result.payload)

    async def submit(self, fn: str, *args: str, actor: str) -> Any:
        proposal = self._proposal(fn, args, actor)
        channel, gateway = self.profile.channel, self._stub()
        try:
            endorsed = await gateway.Endorse(
                gateway_pb2.EndorseRequest(
                    transaction_id=proposal.tx_id,
                    channel_id=channel,
                    proposed_transaction=sign_proposal(self._signer, proposal),
                ),
                timeout=self.profile.endorse_timeout_s,
            )
        except grpc.RpcError as exc:
            raise self._rpc_error(exc, f"endorse {fn}") from None
        prepared = endorsed.prepared_transaction
        try:
            result = transaction_result(prepared)
        except ValueError:  # protobuf DecodeError is a ValueError
            raise LedgerError(
                LEDGER_ERROR, f"the gateway returned an unreadable prepared transaction for {fn}"
            ) from None
        try:
            await gateway.Submit(
                gateway_pb2.SubmitRequest(
                    transaction_id=proposal.tx_id,
                    channel_id=channel,
                    prepared_transaction=sign_envelope(self._signer, prepared),
                ),
                timeout=self.profile.submit_timeout_s,
            )
        except grpc.RpcError as exc:
            raise self._rpc_error(exc, f"submit {fn}") from None
        try:
            status = await gateway.CommitStatus(
                commit_status_request(self._signer, channel, proposal.tx_id),
                timeout=self.profile.commit_timeout_s,
            )
        except grpc.RpcError as exc:
            raise self._rpc_error(exc, f"commit status of {fn} ({proposal.tx_id})") from None
        refused = map_commit_status(
            status.result,
            proposal.tx_id,
            endorsed_by=endorsing_orgs(prepared),
            organizations=self.profile.channel_organizations,
        )
        if refused is not None:
            raise refused
        return self._decode(fn, result)

    async def events(
        self, *, start_block: int | None = None, after_tx_id: str | None = None
    ) -> AsyncIterator[LedgerEvent]:
        """Chaincode events, block by block; runs until the caller stops iterating."""
        request = chaincode_events_request(
            self._signer,
            self.profile.channel,
            self.profile.chaincode,
            start_block=start_block,
            after_tx_id=after_tx_id,
        )
        call = self._stub().ChaincodeEvents(request)
        try:
            async for response in call:
                for event in response.events:
                    yield LedgerEvent(
                        block_number=response.block_number,
                        tx_id=event.tx_id,
                        name=event.event_name,
                        payload=bytes(event.payload),
                    )
        except grpc.RpcError as exc:
            raise self._rpc_error(exc, "chaincode events") from None
        finally:
            call.cancel()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._gateway = None

    def __repr__(self) -> str:
        return (
            f"FabricLedger(peer={self.profile.peer_endpoint!r}, msp_id={self.profile.msp_id!r}, "
            f"channel={self.profile.channel!r}, chaincode={self.profile.chaincode!r})"
        )
