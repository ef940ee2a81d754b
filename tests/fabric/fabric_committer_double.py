"""A TEST DOUBLE of what every peer does with an ordered transaction: validate, then commit.

It follows Fabric's committer (core/common/validation, the v20 validation plugin, the MVCC
validator), in this order, giving Fabric's validation codes:

1. the envelope: the creator's signature over the payload (BAD_CREATOR_SIGNATURE), the tx
   id from nonce + creator (BAD_PROPOSAL_TXID), one action whose proposal response payload
   carries the hash of this transaction's header and proposal payload
   (INVALID_ENDORSER_TRANSACTION), a tx id never ordered before (DUPLICATE_TXID);
2. the endorsement policy, evaluated on the endorsements the transaction carries: each
   counts only if its endorser certificate was issued by a member org's CA with NodeOU
   ``peer`` (each org's policy is ``OR('<org>.peer')``) and its signature over payload +
   endorser verifies; the channel's ``MAJORITY Endorsement`` (ImplicitMeta) needs more than
   half of the member organizations (ENDORSEMENT_POLICY_FAILURE, with Fabric's reason);
3. MVCC: every read version and scanned range still as endorsed (MVCC_READ_CONFLICT,
   PHANTOM_READ_CONFLICT); then the writes, the key history and the chaincode event.

Every transaction is in its own block (no block cutting); all peers share the result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf.message import DecodeError

from .fabric_msp import ChannelMsps, IdentityRefused
from .fabric_world import World


@dataclass
class Committed:
    tx_id: str
    code: int
    block: int
    event: chaincode_event_pb2.ChaincodeEvent | None = None
    reason: str | None = None  # what the validating peer logs for an invalid transaction
    endorsed_by: list[str] = field(default_factory=list)  # orgs whose endorsement verified


def majority(organizations: int) -> int:
    """ImplicitMeta MAJORITY: more than half of the sub-policies."""
    return organizations // 2 + 1


def endorsement_policy_failure(chaincode: str, where: str, satisfied: int, need: int) -> str:
    return (
        f"validation of endorsement policy for chaincode {chaincode} in tx {where} failed: "
        f"implicit policy evaluation failed - {satisfied} sub-policies were satisfied, but "
        f"this policy requires {need} of the 'Endorsement' sub-policies to be satisfied"
    )


def validate_and_commit(
    envelope: common_pb2.Envelope, *, msps: ChannelMsps, world: World, chaincode: str
) -> Committed:
    payload = common_pb2.Payload.FromString(envelope.payload)
    header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
    tx_id, block = header.tx_id, world.next_block()
    where = f"{block}:0"

    def invalid(code: int, reason: str) -> Committed:
        return Committed(tx_id, int(code), block, reason=reason)

    try:
        msps.verify(
            signature_header.creator, envelope.payload, envelope.signature, what="transaction"
        )
    except IdentityRefused as exc:
        return invalid(transaction_pb2.BAD_CREATOR_SIGNATURE, exc.reason)
    if tx_id != hashlib.sha256(signature_header.nonce + signature_header.creator).hexdigest():
        return invalid(transaction_pb2.BAD_PROPOSAL_TXID, "incorrectly computed txid")
    try:
        transaction = transaction_pb2.Transaction.FromString(payload.data)
        if len(transaction.actions) != 1:
            return invalid(transaction_pb2.INVALID_ENDORSER_TRANSACTION, "not one action")
        tx_action = transaction.actions[0]
        action_payload = transaction_pb2.ChaincodeActionPayload.FromString(tx_action.payload)
        response_bytes = action_payload.action.proposal_response_payload
        response = proposal_response_pb2.ProposalResponsePayload.FromString(response_bytes)
        action = proposal_pb2.ChaincodeAction.FromString(response.extension)
        results = rwset_pb2.TxReadWriteSet.FromString(action.results)
    except DecodeError:
        return invalid(transaction_pb2.BAD_PAYLOAD, "the transaction cannot be decoded")
    expected_hash = hashlib.sha256(
        payload.header.channel_header + tx_action.header + action_payload.chaincode_proposal_payload
    ).digest()
    if response.proposal_hash != expected_hash:
        return invalid(transaction_pb2.INVALID_ENDORSER_TRANSACTION, "proposal hash does not match")
    if tx_id in world.tx_ids:
        return invalid(transaction_pb2.DUPLICATE_TXID, f"duplicate txid {tx_id}")
    world.tx_ids.add(tx_id)

    satisfied: list[str] = []
    for endorsement in action_payload.action.endorsements:
        try:
            msp_id = msps.verify(
                endorsement.endorser,
                response_bytes + endorsement.endorser,
                endorsement.signature,
                what="endorsement",
                role="peer",
            )
        except IdentityRefused:
            continue
        if msp_id not in satisfied:
            satisfied.append(msp_id)
    need = majority(len(msps.organizations))
    if len(satisfied) < need:
        failed = invalid(
            transaction_pb2.ENDORSEMENT_POLICY_FAILURE,
            endorsement_policy_failure(chaincode, where, len(satisfied), need),
        )
        failed.endorsed_by = satisfied
        return failed

    rwset = kv_rwset_pb2.KVRWSet()
    for ns in results.ns_rwset:
        if ns.namespace == chaincode:
            rwset = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
    code = world.validate(rwset)
    if code != transaction_pb2.VALID:
        return Committed(tx_id, code, block, endorsed_by=satisfied)
    world.apply(rwset, block, tx_id, header.timestamp.ToDatetime(tzinfo=UTC))
    event = None
    if action.events:
        event = chaincode_event_pb2.ChaincodeEvent.FromString(action.events)
    return Committed(tx_id, int(transaction_pb2.VALID), block, event=event, endorsed_by=satisfied)
