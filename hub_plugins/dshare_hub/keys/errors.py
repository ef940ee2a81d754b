"""The one error type of the key service, with stable codes the broker maps to responses."""

from __future__ import annotations


class KeyServiceError(Exception):
    """Sealing, opening or managing keys failed.

    `code` is stable (tests and the broker match on it); `message` says what was wrong and
    what to do, and never contains key material or plaintext.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
