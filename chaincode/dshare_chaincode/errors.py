"""The contract's errors: a stable code every client maps back, and a message naming the key.

On the wire (Fabric's error message, the embedded ledger's refusal) an error is the single
string ``"<CODE>: <message>"``; `parse_wire` turns such a string back into a `ContractError`,
so a broker reacts to the same code whichever ledger it talks to.
"""

from __future__ import annotations

import re

ASSET_NOT_FOUND = "ASSET_NOT_FOUND"
ASSET_EXISTS = "ASSET_EXISTS"
LEASE_NOT_FOUND = "LEASE_NOT_FOUND"
RUN_NOT_FOUND = "RUN_NOT_FOUND"
APPROVAL_NOT_FOUND = "APPROVAL_NOT_FOUND"
NOT_OWNER = "NOT_OWNER"
NOT_LESSEE = "NOT_LESSEE"
LEASE_CONFLICT = "LEASE_CONFLICT"
POLICY_DENIED = "POLICY_DENIED"
LEASE_EXPIRED = "LEASE_EXPIRED"
INVALID_STATE = "INVALID_STATE"
INVALID_ARGUMENT = "INVALID_ARGUMENT"
UNKNOWN_FUNCTION = "UNKNOWN_FUNCTION"
# The proposal's timestamp is too far from the endorsing peer's clock (dshare_chaincode.clock).
CLOCK_SKEW = "CLOCK_SKEW"

CODES: frozenset[str] = frozenset(
    {
        ASSET_NOT_FOUND,
        ASSET_EXISTS,
        LEASE_NOT_FOUND,
        RUN_NOT_FOUND,
        APPROVAL_NOT_FOUND,
        NOT_OWNER,
        NOT_LESSEE,
        LEASE_CONFLICT,
        POLICY_DENIED,
        LEASE_EXPIRED,
        INVALID_STATE,
        INVALID_ARGUMENT,
        UNKNOWN_FUNCTION,
        CLOCK_SKEW,
    }
)

# Fabric wraps chaincode errors ("... message: CODE: text"), so the code is searched for,
# not anchored at the start of the string.
_WIRE = re.compile(r"\b(" + "|".join(sorted(CODES)) + r"): (.*)\Z", re.DOTALL)


class ContractError(Exception):
    """A refused transaction: nothing it wrote is kept.

    `key` is the ledger key or argument name the refusal is about (for an
    INVALID_ARGUMENT, the argument/field name), so callers can point at it.
    """

    def __init__(self, code: str, message: str, key: str | None = None) -> None:
        if code not in CODES:
            raise ValueError(f"unknown contract error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.key = key

    def to_wire(self) -> str:
        """The single-line form sent through Fabric's error message."""
        return f"{self.code}: {self.message}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContractError):
            return NotImplemented
        return (self.code, self.message, self.key) == (other.code, other.message, other.key)

    def __hash__(self) -> int:
        return hash((self.code, self.message, self.key))


def parse_wire(text: str) -> ContractError | None:
    """Map a wire error string back to a `ContractError`, or None when it carries no code."""
    match = _WIRE.search(text)
    if match is None:
        return None
    return ContractError(match.group(1), match.group(2))
