"""Fabric network configuration: three universities, listing 4.1 policies, ccaas, no Docker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import FABRIC, load_yaml

UNIVERSITIES = ("UiS", "UiO", "UiB")


@pytest.fixture(scope="module")
def configtx():
    return load_yaml(FABRIC / "configtx.yaml")


def test_orderer_org_and_three_universities(configtx):
    assert [org["ID"] for org in configtx["Organizations"]] == [
        "OrdererMSP",
        "UiSMSP",
        "UiOMSP",
        "UiBMSP",
    ]


@pytest.mark.parametrize("org", UNIVERSITIES)
def test_each_university_has_the_policies_of_listing_4_1(configtx, org):
    (definition,) = [o for o in configtx["Organizations"] if o["ID"] == f"{org}MSP"]
    msp = f"{org}MSP"
    assert definition["Policies"] == {
        "Readers": {
            "Type": "Signature",
            "Rule": f"OR('{msp}.admin', '{msp}.peer', '{msp}.client')",
        },
        "Writers": {"Type": "Signature", "Rule": f"OR('{msp}.admin', '{msp}.client')"},
        "Admins": {"Type": "Signature", "Rule": f"OR('{msp}.admin')"},
        "Endorsement": {"Type": "Signature", "Rule": f"OR('{msp}.peer')"},
    }


def test_majority_endorsement_and_lifecycle_approval(configtx):
    policies = configtx["Profiles"]["DShareChannel"]["Application"]["Policies"]
    assert policies["Endorsement"] == {"Type": "ImplicitMeta", "Rule": "MAJORITY Endorsement"}
    assert policies["LifecycleEndorsement"] == {
        "Type": "ImplicitMeta",
        "Rule": "MAJORITY Endorsement",
    }
    assert policies["Admins"]["Rule"] == "MAJORITY Admins"


def test_channel_starts_with_two_members_on_raft(configtx):
    profile = configtx["Profiles"]["DShareChannel"]
    assert profile["Orderer"]["OrdererType"] == "etcdraft"
    assert [o["ID"] for o in profile["Orderer"]["Organizations"]] == ["OrdererMSP"]
    # UiB joins the running channel later (scripts/add-org.sh), as in the thesis
    assert [o["ID"] for o in profile["Application"]["Organizations"]] == ["UiSMSP", "UiOMSP"]
    assert profile["Application"]["Capabilities"] == {"V2_5": True}


def test_crypto_config_has_every_org_with_node_ous():
    crypto = load_yaml(FABRIC / "crypto-config.yaml")
    assert [o["Name"] for o in crypto["PeerOrgs"]] == list(UNIVERSITIES)
    assert all(o["EnableNodeOUs"] for o in crypto["PeerOrgs"] + crypto["OrdererOrgs"])


def test_core_overrides_need_no_docker_and_use_the_ccaas_builder():
    core = load_yaml(FABRIC / "overrides" / "core.yaml")
    assert core["vm"]["endpoint"] == ""
    assert core["chaincode"]["externalBuilders"] == [
        {
            "name": "ccaas_builder",
            "path": "@FABRIC_HOME@/ccaas_builder",
            "propagateEnvironment": ["CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG"],
        }
    ]
    assert core["peer"]["tls"]["enabled"] is True
    assert core["peer"]["gateway"]["enabled"] is True


def test_orderer_overrides_turn_channel_participation_on():
    orderer = load_yaml(FABRIC / "overrides" / "orderer.yaml")
    assert orderer["ChannelParticipation"]["Enabled"] is True
    assert orderer["General"]["BootstrapMethod"] == "none"
    assert orderer["General"]["TLS"]["Enabled"] is True
    assert orderer["Admin"]["TLS"]["ClientAuthRequired"] is True
    assert orderer["General"]["ListenAddress"] == "127.0.0.1"


def test_merge_yaml_fills_placeholders_and_keeps_sample_keys(tmp_path):
    base = tmp_path / "core.yaml"
    base.write_text(
        "vm:\n  endpoint: unix:///var/run/docker.sock\n  docker: {tls: 1}\n"
        "chaincode:\n  externalBuilders: []\n  keepalive: 0\n"
    )
    out = tmp_path / "out.yaml"
    script = FABRIC / "scripts" / "merge_yaml.py"
    run = subprocess.run(
        [
            sys.executable,
            script,
            base,
            FABRIC / "overrides" / "core.yaml",
            out,
            "FABRIC_HOME=/opt/fabric",
            "FABRIC_DATA=/srv",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    merged = load_yaml(out)
    assert merged["vm"] == {"endpoint": "", "docker": {"tls": 1}}
    assert merged["chaincode"]["keepalive"] == 0
    assert merged["chaincode"]["externalBuilders"][0]["path"] == "/opt/fabric/ccaas_builder"


def test_merge_yaml_refuses_an_unfilled_placeholder(tmp_path):
    base = tmp_path / "core.yaml"
    base.write_text("vm: {}\n")
    run = subprocess.run(
        [
            sys.executable,
            FABRIC / "scripts" / "merge_yaml.py",
            base,
            FABRIC / "overrides" / "core.yaml",
            tmp_path / "out.yaml",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "still has a placeholder" in run.stderr
    assert not (tmp_path / "out.yaml").exists()


SCRIPTS = (
    sorted(FABRIC.glob("scripts/*.sh"))
    + sorted((FABRIC.parent / "z2jh-values" / "scripts").glob("*.sh"))
    + sorted((FABRIC.parent / "scripts").glob("*.sh"))
)


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_script_parses_with_bash(script):
    run = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# shellcheck comes with `make test` (scripts/system-deps.sh); missing, this fails.
@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_script_passes_shellcheck(script):
    run = subprocess.run(
        ["shellcheck", "-x", script.name], cwd=script.parent, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout


def test_unknown_org_is_refused_with_its_name():
    run = subprocess.run(
        ["bash", "-c", f"source {FABRIC / 'scripts' / 'env.sh'}; org_port UiX"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert "unknown organization 'UiX'; use UiS, UiO or UiB" in run.stderr


def test_broker_secret_script_refuses_an_unknown_org():
    script = FABRIC.parent / "z2jh-values" / "scripts" / "create-broker-secrets.sh"
    run = subprocess.run(
        ["bash", script, "UiX", "postgresql://x", "/nonexistent"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "unknown organization 'UiX'; use UiS, UiO or UiB" in run.stderr
