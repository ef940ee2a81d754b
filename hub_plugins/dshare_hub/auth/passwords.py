"""Password hashes for the embedded user directory: argon2id (default) or scrypt.

Hashes are self-describing strings, so a directory can mix schemes (say, scrypt hashes
made on a machine without argon2) and verification picks the scheme from the prefix.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ARGON2_PREFIX = "$argon2"
SCRYPT_PREFIX = "scrypt$"
SCHEMES = ("argon2", "scrypt")

# scrypt parameters: n=2**15, r=8 is OWASP's interactive-login recommendation.
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_MAXMEM = 128 * _SCRYPT_N * _SCRYPT_R * 2

_argon2 = PasswordHasher()


class HashFormatError(ValueError):
    """A stored hash that no supported scheme recognizes."""


def hash_password(password: str, scheme: str = "argon2") -> str:
    """Hash `password` for storage in the directory."""
    if scheme == "argon2":
        return _argon2.hash(password)
    if scheme == "scrypt":
        salt = secrets.token_bytes(16)
        digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
        return "$".join(
            [
                "scrypt",
                str(_SCRYPT_N),
                str(_SCRYPT_R),
                str(_SCRYPT_P),
                base64.b64encode(salt).decode(),
                base64.b64encode(digest).decode(),
            ]
        )
    raise ValueError(f"unknown password hash scheme {scheme!r}; use one of {', '.join(SCHEMES)}")


def hash_format_problem(stored: object) -> str | None:
    """Why `stored` is not a hash this module can verify, or None when it is."""
    if not isinstance(stored, str) or not stored:
        return "must be a non-empty string made by `dshare users add` or `dshare users passwd`"
    if stored.startswith(ARGON2_PREFIX):
        try:
            _argon2.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return "is not a valid argon2 hash"
        return None
    if stored.startswith(SCRYPT_PREFIX):
        try:
            _parse_scrypt(stored)
        except HashFormatError as exc:
            return str(exc)
        return None
    return "is neither an argon2 ('$argon2id$...') nor a scrypt ('scrypt$...') hash"


def verify_password(stored: str, password: str) -> bool:
    """True when `password` matches `stored`; comparisons take constant time."""
    if stored.startswith(ARGON2_PREFIX):
        try:
            return _argon2.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    if stored.startswith(SCRYPT_PREFIX):
        n, r, p, salt, digest = _parse_scrypt(stored)
        return hmac.compare_digest(_scrypt(password, salt, n, r, p), digest)
    raise HashFormatError("unrecognized password hash")


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, verified for unknown users so that a login for a
    name that does not exist takes as long as one with a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=max(_SCRYPT_MAXMEM, 128 * n * r * 2),
        dklen=32,
    )


def _parse_scrypt(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6:
        raise HashFormatError("is not a valid scrypt hash: expected scrypt$N$r$p$salt$hash")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError as exc:
        raise HashFormatError(f"is not a valid scrypt hash: {exc}") from None
    if n < 2 or n & (n - 1) or not 0 < r <= 64 or not 0 < p <= 16 or n > 2**20:
        raise HashFormatError("is not a valid scrypt hash: parameters out of range")
    if len(salt) < 8 or len(digest) != 32:
        raise HashFormatError("is not a valid scrypt hash: salt or digest has the wrong length")
    return n, r, p, salt, digest
