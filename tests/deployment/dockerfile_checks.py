"""A small Dockerfile reader and the properties every dshare image must have."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    return out


PINNED = re.compile(r"^[^\s:@]+(:[\w][\w.-]*)?(@sha256:[0-9a-f]{64})?$")
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSW|PRIVATE|CREDENTIAL|API_?KEY|_KEY\b)", re.I)


def problems(text: str) -> list[str]:
    """Everything that breaks the image rules, as 'line N: what is wrong' messages."""
    found: list[str] = []
    instructions = parse(text)
    froms = [i for i in instructions if i.keyword == "FROM"]
    if not froms:
        found.append("no FROM line")
    for i in froms:
        image = i.args.split()[0]
        if "$" in image:
            found.append(f"line {i.line}: base image {image} comes from a build argument")
            continue
        match = PINNED.match(image)
        tagged = match is not None and (match.group(1) or match.group(2))
        if not tagged or image.endswith(":latest"):
            found.append(f"line {i.line}: base image {image} is not pinned to a tag or digest")
    users = [i for i in instructions if i.keyword == "USER"]
    if not users:
        found.append("no USER line: the image would run as root")
    elif users[-1].args.split(":")[0] in ("root", "0"):
        found.append(f"line {users[-1].line}: the final USER is root")
    for i in instructions:
        if i.keyword in ("ARG", "ENV"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", i.args)[:1]:
                if SECRET_NAME.search(name):
                    found.append(f"line {i.line}: {i.keyword} {name} looks like a secret")
        if i.keyword == "ADD" and re.search(r"\b(https?|ftp)://", i.args):
            found.append(f"line {i.line}: ADD of a URL; download in a RUN with a checksum")
    return found
