"""Key-encryption keys (KEKs): where an organization's KEK comes from and how it is named.

A KEK source holds one or more 256-bit keys, base64, one per line (blank lines and `#`
comments ignored). The first key is the current one: new data keys are wrapped with it.
The others are kept only so data keys wrapped before a rotation can still be unwrapped
until `dshare keys rotate` has re-wrapped them. The source is a file (a Kubernetes Secret
mounted as a file is just a file) or an environment variable; never the ledger or the key
database, so a copy of the database alone opens nothing.

A KEK is named by an id derived from the key itself (an HMAC, which reveals nothing about
the key), so operators never have to keep names and keys in step.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .errors import KeyServiceError

KEK_BYTES = 32


@dataclass(frozen=True)
class Kek:
    kek_id: str
    key: bytes = field(repr=False)


def kek_id_for(key: bytes) -> str:
    return hmac.new(key, b"dshare kek id v1", hashlib.sha256).hexdigest()[:16]


def generate_kek_line() -> str:
    """A fresh random KEK, base64, as one line of a KEK file."""
    return base64.b64encode(secrets.token_bytes(KEK_BYTES)).decode("ascii")


@dataclass(frozen=True)
class Keyring:
    """The KEKs of one organization, current first."""

    keks: tuple[Kek, ...]

    @property
    def current(self) -> Kek:
        return self.keks[0]

    def get(self, kek_id: str) -> Kek | None:
        for kek in self.keks:
            if kek.kek_id == kek_id:
                return kek
        return None


def parse_keyring(text: str, *, origin: str) -> Keyring:
    """Parse KEK lines; `origin` names the file or variable in error messages."""
    keks: list[Kek] = []
    # Commas are accepted as separators so an environment variable can hold several keys.
    lines = text.replace(",", "\n").splitlines()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise KeyServiceError(
                "KEK_INVALID",
                f"{origin}, line {number}: not base64. Each line must hold one 256-bit key in "
                "base64; generate one with `dshare keys generate-kek`.",
            ) from None
        if len(key) != KEK_BYTES:
            raise KeyServiceError(
                "KEK_INVALID",
                f"{origin}, line {number}: the key is {len(key)} bytes, a KEK must be "
                f"{KEK_BYTES} bytes (256 bits); generate one with `dshare keys generate-kek`.",
            )
        keks.append(Kek(kek_id_for(key), key))
    if not keks:
        raise KeyServiceError(
            "KEK_MISSING",
            f"{origin} holds no key. Put a base64 256-bit key in it (`dshare keys generate-kek`).",
        )
    return Keyring(tuple(keks))


class KekSource:
    """Reads the keyring from a file or an environment variable.

    A file is re-read when it changes, so an operator can put a new KEK in front of the old
    one (or a Kubernetes Secret can be updated) while the broker keeps serving: that is what
    makes rotation possible without downtime.
    """

    def __init__(self, *, kek_file: str = "", kek_env: str = "") -> None:
        if bool(kek_file) == bool(kek_env):
            raise KeyServiceError(
                "KEK_MISSING",
                "set exactly one KEK source: kek_file (a file, e.g. a mounted Kubernetes "
                "Secret) or kek_env (the name of an environment variable)",
            )
        self.kek_file = kek_file
        self.kek_env = kek_env
        self._cached: Keyring | None = None
        self._stamp: tuple[int, int] | None = None

    @property
    def origin(self) -> str:
        if self.kek_file:
            return f"KEK file {self.kek_file}"
        return f"environment variable {self.kek_env}"

    def keyring(self) -> Keyring:
        if self.kek_env:
            value = os.environ.get(self.kek_env)
            if value is None:
                raise KeyServiceError(
                    "KEK_MISSING", f"{self.origin} is not set; it must hold the org's KEK"
                )
            return parse_keyring(value, origin=self.origin)
        path = Path(self.kek_file)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise KeyServiceError(
                "KEK_MISSING",
                f"{self.origin} does not exist; create it with `dshare keys generate-kek "
                f"--out {self.kek_file}`",
            ) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cached is None or stamp != self._stamp:
            self._cached = parse_keyring(
                path.read_bytes().decode("ascii", "replace"), origin=self.origin
            )
            self._stamp = stamp
        return self._cached
