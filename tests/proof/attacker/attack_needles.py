"""Every secret of a running embedded deployment, read as root: what the attacker hunts for.

Each needle has a name, the forms it could be written down in (chosen per kind: a KEK is
kept as base64, so its base64 text, its raw bytes and its hex; a token is hex text, so the
text), and the one user (if any) allowed to hold it: a scientist's own password, hash and
server token are not a leak when that scientist finds them.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from proof_support import data_keys

from dshare_hub.auth.directory import parse_directory
from dshare_hub.demo.content import ORGS, make_datasets
from dshare_hub.demo.layout import DemoLayout
from dshare_hub.keys import KekSource

MARKER_BYTES = 40
# Environment variables of the deployment's own processes whose values are secrets.
SECRET_ENV_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")
DEPLOYMENT_PROCESSES = (
    b"jupyterhub",
    b"configurable-http-proxy",
    b"dshare_hub.broker",
    b"dshare_hub.executor",
)


@dataclass
class Needle:
    name: str
    kind: str
    forms: list[bytes]
    holder: str | None = None  # the one user allowed to find it
    dataset: str | None = None  # for raw data: the dataset id it belongs to


@dataclass
class Needles:
    items: list[Needle] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interactive: set[str] = field(default_factory=set)  # datasets a notebook may read

    def add(self, name: str, kind: str, forms: list[bytes], **kw: str | None) -> None:
        unique = sorted({f for f in forms if len(f) >= 8})
        if not unique:
            self.notes.append(f"{name}: no form of 8 bytes or more, not searched")
            return
        self.items.append(Needle(name, kind, unique, **kw))

    def for_attacker(
        self, user: str, allowed_datasets: frozenset[str] = frozenset()
    ) -> dict[str, list[bytes]]:
        """{name: forms} of what `user` must not find."""
        return {
            n.name: n.forms
            for n in self.items
            if n.holder != user and (n.dataset is None or n.dataset not in allowed_datasets)
        }

    def by_name(self) -> dict[str, Needle]:
        return {n.name: n for n in self.items}


def binary_forms(raw: bytes) -> list[bytes]:
    return [
        raw,
        raw.hex().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def _pem_forms(path: Path) -> list[bytes]:
    """A private key file: its longest base64 line as stored, and its private scalar."""
    text = path.read_bytes()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith(b"-----")]
    forms = [max(lines, key=len)]
    # The last line holds the key's tail (the public point for EC): the first lines hold
    # the private scalar in PKCS#8; search one whole line of the middle as well.
    forms += [ln for ln in lines[1:-1] if len(ln) >= 40][:1]
    key = load_pem_private_key(text, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        forms += [scalar, scalar.hex().encode(), base64.b64encode(scalar)]
    return forms


def _marker(data: bytes, others: list[bytes]) -> bytes | None:
    """A MARKER_BYTES slice of `data` found nowhere else in the data, from its middle out."""
    if len(data) < MARKER_BYTES:
        return None
    middle = (len(data) - MARKER_BYTES) // 2
    for offset in sorted(range(len(data) - MARKER_BYTES + 1), key=lambda o: abs(o - middle)):
        piece = data[offset : offset + MARKER_BYTES]
        if data.count(piece) == 1 and not any(piece in o for o in others):
            return piece
    return None


def server_processes() -> dict[str, dict[str, bytes]]:
    """{pid: environment} of every process, read as root."""
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        pairs = dict(p.split(b"=", 1) for p in env.split(b"\0") if b"=" in p)
        pairs[b"\0cmdline"] = cmd
        out[proc.name] = {k.decode(errors="replace"): v for k, v in pairs.items()}
    return out


def collect(layout: DemoLayout, scientists: list[str]) -> Needles:
    needles = Needles()
    for org in ORGS:
        for kek in KekSource(kek_file=str(layout.kek_file(org))).keyring().keks:
            needles.add(f"{org} KEK {kek.kek_id}", "kek", binary_forms(kek.key))
        for i, key in enumerate(data_keys(layout, org)):
            needles.add(f"{org} data key {i}", "data key", binary_forms(key))
        for pem in ("key.pem", "ca-key.pem"):
            path = layout.identities / org / pem
            if path.exists():
                needles.add(f"{org} {pem}", "org private key", _pem_forms(path))
            else:
                needles.notes.append(f"{path} does not exist")

    cookie = (layout.hub_dir / "cookie_secret").read_bytes().strip()
    forms = [cookie]
    try:
        forms += binary_forms(bytes.fromhex(cookie.decode()))
    except ValueError:
        forms += [base64.b64decode(cookie)]
    needles.add("hub cookie secret", "hub secret", forms)
    proxy_token = layout.hub_dir / "proxy-token"
    if proxy_token.exists():
        needles.add("hub proxy token", "hub secret", [proxy_token.read_bytes().strip()])
    for path in sorted((layout.root / "secrets").glob("*-token")):
        if path.suffix != ".tmp":
            needles.add(f"secret file {path.name}", "hub secret", [path.read_bytes().strip()])

    for line in layout.logins_file.read_text().splitlines():
        name, password = line.split()
        needles.add(f"password of {name}", "password", [password.encode()], holder=name)
    directory = parse_directory(layout.user_directory.read_text(), str(layout.user_directory))
    for name, user in directory.items():
        digest = user.password_hash.rsplit("$", 1)[-1]
        needles.add(f"password hash of {name}", "password hash", [digest.encode()], holder=name)

    for env in server_processes().values():
        cmd = env.get("\0cmdline", b"")
        user = env.get("JUPYTERHUB_USER", b"").decode()
        token = env.get("JUPYTERHUB_API_TOKEN")
        if user and token and b"singleuser" in cmd:
            needles.add(f"server token of {user}", "user token", [token], holder=user)
        elif any(p in cmd for p in DEPLOYMENT_PROCESSES) and not user:
            for var, value in env.items():
                if var.startswith("\0") or not any(w in var for w in SECRET_ENV_WORDS):
                    continue
                if len(value) >= 16:
                    process = cmd.split(b"\0")[:3]
                    needles.add(f"env {var} of {process!r}", "service secret", [value])
    for user in scientists:
        if f"server token of {user}" not in needles.by_name():
            needles.notes.append(f"no running server of {user} found: its token not searched")

    demo = make_datasets(layout.data)
    needles.interactive = {d.slug for d in demo if d.policy.get("interactive")}
    datasets = {d.directory.resolve(): d.slug for d in demo}
    files = [p for p in sorted(layout.data.rglob("*")) if p.is_file() and not p.is_symlink()]
    contents = {p: p.read_bytes() for p in files}
    for path, data in contents.items():
        slug = next((s for d, s in datasets.items() if path.resolve().is_relative_to(d)), None)
        marker = _marker(data, [d for p, d in contents.items() if p != path])
        rel = path.relative_to(layout.data)
        if marker is None:
            needles.notes.append(f"raw data {rel}: too short for a unique marker, not searched")
            continue
        needles.add(f"raw data {rel}", "raw data", [marker], dataset=slug)
    for directory, slug in datasets.items():
        needles.add(
            f"storage path of {slug}", "storage path", [os.fsencode(str(directory))], dataset=None
        )
    return needles
