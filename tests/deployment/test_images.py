"""The Dockerfiles: pinned bases, non-root, no secret, dshare installed and enabled."""

from __future__ import annotations

import re

import pytest

from .conftest import IMAGE
from .dockerfile_checks import parse, problems

DOCKERFILES = ["hub.Dockerfile", "singleuser.Dockerfile", "chaincode.Dockerfile"]


def read(name: str) -> str:
    return (IMAGE / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_follows_the_image_rules(name):
    assert problems(read(name)) == []


def test_hub_image_builds_on_the_chart_hub_image():
    (base,) = [i.args for i in parse(read("hub.Dockerfile")) if i.keyword == "FROM"]
    assert base == "quay.io/jupyterhub/k8s-hub:4.4.0"
    runs = " ".join(i.args for i in parse(read("hub.Dockerfile")) if i.keyword == "RUN")
    assert "dshare-0.1.0-py3-none-any.whl[hub]" in runs


def test_singleuser_image_has_a_dated_docker_stacks_base_and_enables_dshare():
    instructions = parse(read("singleuser.Dockerfile"))
    (base,) = [i.args for i in instructions if i.keyword == "FROM"]
    assert re.fullmatch(r"quay\.io/jupyter/base-notebook:\d{4}-\d{2}-\d{2}", base)
    runs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert "dshare-0.1.0-py3-none-any.whl[singleuser]" in runs
    assert "jupyter server extension enable --sys-prefix dshare_server" in runs
    copies = [i.args for i in instructions if i.keyword == "COPY"]
    assert (
        "image/singleuser/ipython_kernel_config.py /etc/ipython/ipython_kernel_config.py" in copies
    )
    assert [i.args for i in instructions if i.keyword == "USER"][-1] == "${NB_UID}"


def test_kernel_config_autoloads_the_magic_extension():
    from traitlets.config import Config

    c = Config()
    code = (IMAGE / "singleuser" / "ipython_kernel_config.py").read_text(encoding="utf-8")
    exec(code, {"get_config": lambda: c})
    assert c.InteractiveShellApp.extensions == ["dshare_server"]
    import dshare_server

    assert callable(dshare_server.load_ipython_extension)


def test_chaincode_image_serves_the_contract_as_a_non_root_service():
    instructions = parse(read("chaincode.Dockerfile"))
    assert [i.args for i in instructions if i.keyword == "CMD"] == [
        '["python", "-m", "dshare_chaincode.ccaas"]'
    ]
    assert [i.args for i in instructions if i.keyword == "USER"] == ["10001"]
    assert [i.args for i in instructions if i.keyword == "EXPOSE"] == ["9999"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM python\nUSER 1000\n", "line 1: base image python is not pinned to a tag or digest"),
        ("FROM python:latest\nUSER 1000\n", "line 1: base image python:latest is not pinned"),
        ("ARG BASE=python:3.12\nFROM $BASE\nUSER 1\n", "line 2: base image $BASE comes from"),
        ("FROM python:3.12\n", "no USER line: the image would run as root"),
        ("FROM python:3.12\nUSER 1000\nUSER root\n", "line 3: the final USER is root"),
        ("FROM python:3.12\nENV HUB_API_TOKEN=abc\nUSER 1\n", "line 2: ENV HUB_API_TOKEN looks"),
        ("FROM python:3.12\nARG AWS_SECRET\nUSER 1\n", "line 2: ARG AWS_SECRET looks like"),
        (
            "FROM python:3.12\nADD https://example.org/x.tgz /x\nUSER 1\n",
            "line 2: ADD of a URL",
        ),
    ],
)
def test_image_rules_catch_each_violation(text, message):
    found = problems(text)
    assert len(found) == 1 and found[0].startswith(message), found


def test_digest_pinned_base_and_continued_lines_are_accepted():
    text = (
        "FROM python@sha256:" + "a" * 64 + "\n"
        "RUN pip install x \\\n"
        "    # a comment inside a continued RUN\n"
        "    && true\n"
        "USER 1000\n"
    )
    assert problems(text) == []
    assert parse(text)[1].args == "pip install x && true"
