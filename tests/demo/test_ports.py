"""`dshare demo` refuses ports someone else holds, naming each and what dshare wanted it for."""

from __future__ import annotations

import socket

import pytest
from ports import free_port, free_port_block

from dshare_hub.cli import build_parser
from dshare_hub.demo.deployment import Deployment
from dshare_hub.demo.layout import DemoLayout


def test_busy_proxy_api_port_is_named_and_nothing_is_provisioned(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        layout = DemoLayout(
            root=tmp_path / "data",
            port=free_port(),
            hub_port=free_port(),
            broker_base_port=free_port_block(3),
            proxy_api_port=port,
        )
        with pytest.raises(RuntimeError) as e:
            Deployment(layout).start()
    assert f"in use on 127.0.0.1: {port} (the proxy's REST API)" in str(e.value)
    assert not (tmp_path / "data").exists()


def test_demo_command_reports_it_without_a_traceback(tmp_path, capsys):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        args = build_parser().parse_args(
            ["demo", "--data-dir", str(tmp_path / "d"), "--port", str(port)]
        )
        assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dshare demo: cannot start dshare: in use on 127.0.0.1: {port} ")
    assert "Traceback" not in err
