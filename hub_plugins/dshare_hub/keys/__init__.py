"""Envelope encryption of storage details: per-asset data keys wrapped by the org's KEK."""

from .errors import KeyServiceError
from .kek import KekSource, Keyring, generate_kek_line
from .service import KeyService, RotationReport
from .store import KeyStore

__all__ = [
    "KekSource",
    "KeyService",
    "KeyServiceError",
    "KeyStore",
    "Keyring",
    "RotationReport",
    "generate_kek_line",
]
