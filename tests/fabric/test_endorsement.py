"""The channel's MAJORITY endorsement policy, through FabricLedger and the Gateway TEST DOUBLE.

Three peers (UiS, whose peer hosts the gateway, UiO, UiB) run the real contract on one
committed state. The double gathers endorsements the way Fabric's gateway plans them and its
committer evaluates the policy on the endorsements a transaction carries, so a transaction
one organization endorsed alone is refused as on Fabric, with a message naming who endorsed
and what the channel needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from fabric_protos.peer import transaction_pb2

from dshare_hub.ledger import LedgerError
from dshare_hub.ledger.fabric import FabricLedger

from .conftest import ORGS, PEER_ADDRESSES, Pki
from .fabric_gateway_double import GatewayDouble
from .fabric_peer_double import real_contract, unreachable
from .fabric_pki import CA

pytestmark = pytest.mark.asyncio
MakeLedger = Callable[..., FabricLedger]
ASSET = {"id": "a1", "name": "Counts", "storage_type": "local", "sealed_storage": "sealed"}
MEMBERS = list(ORGS)
MAJORITY = "MAJORITY (2 of 3: UiSMSP, UiOMSP, UiBMSP)"


async def submit(ledger: FabricLedger) -> Any:
    try:
        return await ledger.submit("RegisterAsset", json.dumps(ASSET), actor="alice")
    finally:
        await ledger.close()


def executed_by(double: GatewayDouble) -> list[str]:
    return [msp for msp, peer in double.peers.items() if peer.executed]


async def test_with_one_peer_down_the_two_other_organizations_endorse(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    double.peers["UiOMSP"].reachable = False
    asset = await submit(make_ledger())
    assert asset["owner_org"] == "UiSMSP"
    (committed,) = double.committed.values()
    assert committed.code == transaction_pb2.VALID
    assert committed.endorsed_by == ["UiSMSP", "UiBMSP"]
    assert executed_by(double) == ["UiSMSP", "UiBMSP"]


@pytest.mark.parametrize(
    ("members", "needs"),
    [(MEMBERS, MAJORITY), (None, "a MAJORITY of its organizations")],
    ids=["profile-lists-the-members", "profile-without-members"],
)
async def test_with_two_peers_unreachable_the_gateway_gives_up_naming_each_peer(
    make_ledger: MakeLedger,
    gateway: tuple[GatewayDouble, str],
    members: list[str] | None,
    needs: str,
) -> None:
    double, address = gateway
    for msp in ("UiOMSP", "UiBMSP"):
        double.peers[msp].reachable = False
    extra = {} if members is None else {"channel_organizations": members}
    with pytest.raises(LedgerError) as err:
        await submit(make_ledger(**extra))
    uio, uib = PEER_ADDRESSES["UiOMSP"], PEER_ADDRESSES["UiBMSP"]
    assert err.value.code == "ENDORSEMENT_POLICY_FAILURE"
    assert err.value.message == (
        "could not endorse RegisterAsset: the transaction was endorsed by UiSMSP only; the "
        f"channel needs {needs}. These peers did not endorse it: {uio} (UiOMSP): "
        f"{unreachable(uio)}; {uib} (UiBMSP): {unreachable(uib)}. Check that they are running "
        f"and reachable from the gateway at {address}; nothing was recorded"
    )
    assert double.requests == ["Endorse"]  # nothing was ordered
    assert double.world.state == {}


async def test_with_two_peers_gone_from_discovery_no_layout_is_possible(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, address = gateway
    for msp in ("UiOMSP", "UiBMSP"):
        double.peers[msp].in_discovery = False
    with pytest.raises(LedgerError) as err:
        await submit(make_ledger(channel_organizations=MEMBERS))
    assert err.value.code == "ENDORSEMENT_POLICY_FAILURE"
    assert err.value.message == (
        f"could not endorse RegisterAsset: the gateway at {address} knows too few running "
        f"peers to satisfy the channel's endorsement policy, {MAJORITY} (no combination of "
        "peers can be derived which satisfy the endorsement policy: no peer combination can "
        "satisfy the endorsement policy). Check that the other organizations' peers are "
        "running; nothing was recorded"
    )
    assert executed_by(double) == ["UiSMSP"]


async def test_a_transaction_endorsed_by_one_organization_is_invalid_at_commit(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    """A gateway told to ask UiS alone (as a client naming endorsing organizations would)
    gets one endorsement; the transaction is ordered, and every validating peer refuses it."""
    double, _ = gateway
    double.endorsing_orgs = ["UiSMSP"]
    with pytest.raises(LedgerError) as err:
        await submit(make_ledger(channel_organizations=MEMBERS))
    (committed,) = double.committed.values()
    assert committed.code == transaction_pb2.ENDORSEMENT_POLICY_FAILURE
    assert committed.reason == (
        f"validation of endorsement policy for chaincode dshare in tx {committed.block}:0 "
        "failed: implicit policy evaluation failed - 1 sub-policies were satisfied, but this "
        "policy requires 2 of the 'Endorsement' sub-policies to be satisfied"
    )
    assert (err.value.code, err.value.key) == ("ENDORSEMENT_POLICY_FAILURE", committed.tx_id)
    assert err.value.message == (
        f"transaction {committed.tx_id} was endorsed by UiSMSP only; the channel needs "
        f"{MAJORITY}, so the validating peers marked it ENDORSEMENT_POLICY_FAILURE; nothing "
        "was recorded"
    )
    assert double.world.state == {}
    assert double.blocks == [(committed.block, [])]  # ordered, but no event: not valid


@pytest.mark.parametrize("forgery", ["certificate from another CA", "a client's certificate"])
async def test_an_endorsement_that_does_not_verify_does_not_count(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str], pki: Pki, forgery: str
) -> None:
    """The gateway does not check endorsements; the validating peers do: a UiO "peer" whose
    certificate another CA issued, or that is a client identity, endorses for no one."""
    double, _ = gateway
    double.peers["UiOMSP"].identity = (
        CA("UiO").issue("peer0.uio.example.com", ou="peer")
        if forgery == "certificate from another CA"
        else pki.clients["UiOMSP"]
    )
    with pytest.raises(LedgerError) as err:
        await submit(make_ledger(channel_organizations=MEMBERS))
    (committed,) = double.committed.values()
    assert (committed.code, committed.endorsed_by) == (
        transaction_pb2.ENDORSEMENT_POLICY_FAILURE,
        ["UiSMSP"],
    )
    assert err.value.message == (
        f"transaction {committed.tx_id} carries endorsements of UiSMSP and UiOMSP, but the "
        f"validating peers found they do not satisfy the channel's {MAJORITY} "
        "(ENDORSEMENT_POLICY_FAILURE): an endorsement's signature or peer certificate did not "
        "verify; nothing was recorded"
    )
    assert double.world.state == {}


def diverging(tag: str) -> Callable[[Any, str, Sequence[str]], bytes]:
    """The contract, plus one write only this peer makes: a non-deterministic chaincode."""

    def invoke(stub: Any, fn: str, args: Sequence[str]) -> bytes:
        stub.put_state("endorsed-by", tag.encode())
        return real_contract(stub, fn, args)

    return invoke


async def test_a_peer_computing_another_result_is_outvoted(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    double.peers["UiOMSP"].invoke = diverging("UiO")
    await submit(make_ledger())
    (committed,) = double.committed.values()
    assert (committed.code, committed.endorsed_by) == (
        transaction_pb2.VALID,
        ["UiSMSP", "UiBMSP"],
    )
    assert executed_by(double) == ["UiSMSP", "UiOMSP", "UiBMSP"]
    assert "endorsed-by" not in double.world.state


async def test_when_no_two_peers_agree_it_is_an_endorsement_mismatch(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    double.peers["UiOMSP"].invoke = diverging("UiO")
    double.peers["UiBMSP"].invoke = diverging("UiB")
    with pytest.raises(LedgerError) as err:
        await submit(make_ledger(channel_organizations=MEMBERS))
    assert err.value.code == "ENDORSEMENT_MISMATCH"
    assert err.value.message == (
        "could not endorse RegisterAsset: the peers of UiOMSP and UiBMSP computed a different "
        "result from the peer of UiSMSP (ProposalResponsePayloads do not match), so fewer "
        f"matching endorsements were gathered than the channel needs, {MAJORITY}; nothing was "
        "recorded. The peers disagree about the ledger's state or the contract is not "
        "deterministic: report it to the ledger's operators"
    )
    assert double.requests == ["Endorse"]
    assert double.world.state == {}


async def test_a_contract_refusal_is_reported_once_not_as_a_policy_failure(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    await submit(make_ledger())
    with pytest.raises(LedgerError) as err:
        await submit(make_ledger("UiOMSP"))
    assert (err.value.code, err.value.message) == ("ASSET_EXISTS", "asset 'a1' already exists")
    # the gateway's own peer refused first; no other peer was asked
    assert [len(p.executed) for p in double.peers.values()] == [2, 1, 0]


async def test_named_endorsing_organizations_without_a_live_peer_are_unavailable(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, address = gateway
    double.endorsing_orgs = ["UiSMSP", "UiBMSP"]
    double.peers["UiBMSP"].in_discovery = False
    with pytest.raises(LedgerError) as err:
        await submit(make_ledger())
    assert err.value.code == "ENDORSEMENT_POLICY_FAILURE"
    assert err.value.message == (
        f"could not endorse RegisterAsset: the gateway at {address} has no running peer of "
        "the organizations asked to endorse (failed to find any endorsing peers for org(s): "
        "UiBMSP); nothing was recorded"
    )
    assert executed_by(double) == []
