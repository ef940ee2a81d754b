"""`%dshare_run --request-approval` in a real IPython shell: it sends the workflow and the
home's snapshot (what a run would send) and prints what the broker did; it runs nothing."""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from dshare_server.broker_client import BrokerError
from dshare_server.magic import DShareMagics, load_ipython_extension
from dshare_server.workflow.orchestrate import RunContext

from .broker_double import InMemoryBroker


class ApprovalBroker(InMemoryBroker):
    """The broker double, plus POST /approvals: keeps the body, answers as the broker does
    for one owner (or refuses, when told to)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.refusal: BrokerError | None = None

    async def request_approval(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        if self.refusal is not None:
            raise self.refusal
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(body["workspace"]))) as tar:
            names = sorted(m.name for m in tar if m.isfile())
        return {
            "items": [
                {
                    "id": "CA-1",
                    "owner_org": "UiS",
                    "dataset_ids": ["ds-1"],
                    "code_sha256": "ab" * 32,
                    "files": [{"path": n, "sha256": "0" * 64} for n in names],
                }
            ],
            "skipped": [{"owner_org": "UiB", "message": "this code is already approved"}],
            "code_sha256": "ab" * 32,
        }


@pytest.fixture
def shell(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "count.py").write_text("print(1)\n")
    ip = InteractiveShell.instance()
    ip.display_pub = CapturingDisplayPublisher()
    load_ipython_extension(ip)
    magics: DShareMagics = ip.magics_manager.registry["DShareMagics"]
    broker = ApprovalBroker()
    magics.broker_factory = lambda: broker
    magics.context_factory = lambda: RunContext(user="alice", home_dir=str(home), cwd=str(home))
    yield ip, broker, home
    InteractiveShell.clear_instance()


def test_request_sends_spec_and_home_and_prints_the_reply(shell, capsys):
    ip, broker, home = shell
    (home / "wf.yaml").write_text("jobs:\n- python count.py\n")
    assert ip.run_line_magic("dshare_run", f"{home / 'wf.yaml'} --request-approval") is None
    [body] = broker.requests
    # What a run sends (orchestrate.snapshot_body), so the broker hashes the same code.
    assert sorted(body) == ["spec", "working_dir", "workspace"]
    assert body["spec"] == "jobs:\n- python count.py\n"
    assert body["working_dir"] == ""
    assert broker.runs == {}, "asking for approval started a run"
    out = capsys.readouterr().out
    assert out == (
        "code approval requested from UiS for ds-1: request CA-1 (code abababababab, 2 file(s): "
        "count.py, wf.yaml)\nthis code is already approved\n"
    )


def test_a_bad_workflow_is_refused_here_with_its_line(shell, capsys):
    ip, broker, _home = shell
    ip.run_cell_magic("dshare_run", "--request-approval", "jobs: [\n")
    assert broker.requests == []
    assert capsys.readouterr().out.splitlines()[0] == (
        "cell:2:1: error: YAML syntax error: while parsing a flow node, did not find expected "
        "node content"
    )


def test_the_broker_refusal_is_printed(shell, capsys):
    ip, broker, _home = shell
    broker.refusal = BrokerError(
        409,
        {
            "code": "INVALID_STATE",
            "message": "no dataset this workflow reads requires approved code; run it as it is",
        },
    )
    ip.run_cell_magic("dshare_run", "--request-approval", "jobs:\n- echo hi\n")
    assert capsys.readouterr().out == (
        "%dshare_run: INVALID_STATE: no dataset this workflow reads requires approved code; "
        "run it as it is\n"
    )
