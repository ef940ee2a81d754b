"""The ccaas package files and the chaincode image definition."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAINCODE = ROOT / "chaincode"


def test_metadata_declares_the_ccaas_builder() -> None:
    metadata = json.loads((CHAINCODE / "metadata.json").read_text())
    assert metadata["type"] == "ccaas"
    assert re.fullmatch(r"[A-Za-z0-9_.+-]+", metadata["label"])


def test_connection_points_at_the_port_the_image_listens_on() -> None:
    connection = json.loads((CHAINCODE / "connection.json").read_text())
    dockerfile = (CHAINCODE / "Dockerfile").read_text()
    port = connection["address"].rsplit(":", 1)[1]
    assert f"EXPOSE {port}\n" in dockerfile
    assert f"CHAINCODE_SERVER_ADDRESS=0.0.0.0:{port}" in dockerfile
    assert re.fullmatch(r"\d+s", connection["dial_timeout"])
    # The service refuses to start without TLS unless told CHAINCODE_PLAINTEXT=true; the
    # certificates are added per network by fabric-network/scripts/deploy-chaincode.sh.
    assert connection["tls_required"] is True


def test_dockerfile_pins_the_base_runs_non_root_and_holds_no_secret() -> None:
    lines = [
        line.strip()
        for line in (CHAINCODE / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) == 1
    assert re.fullmatch(r"FROM python:\d+\.\d+\.\d+-slim-[a-z]+", froms[0]), froms[0]
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0", "USER 0:0")
    assert lines[-1] == 'CMD ["python", "-m", "dshare_chaincode.ccaas"]'
    text = "\n".join(lines).lower()
    for word in ("password", "secret", "token", "private", "-----begin"):
        assert word not in text, word
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert "fabric-chaincode-python==2.5.4" in text
