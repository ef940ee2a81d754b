"""Organization identities for the embedded ledger: a local CA per organization and an org
signing identity (ECDSA P-256) issued by it, as Fabric's MSPs would hold.

Files live under ``<identity_dir>/<org>/``: ``ca.pem``, ``ca-key.pem``, ``cert.pem`` and
``key.pem``. Private keys are written with mode 0600 and never logged or put in errors.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ORG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CA_YEARS = 10
CERT_YEARS = 5


class IdentityError(Exception):
    """An identity that cannot be created, loaded or trusted; the message says why."""


@dataclass(frozen=True)
class OrgIdentity:
    """An organization's signing identity: `msp_id` is what the contract sees as the org."""

    msp_id: str
    cert_pem: str
    ca_cert_pem: str
    directory: Path
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def __repr__(self) -> str:  # never print key material
        return f"OrgIdentity(msp_id={self.msp_id!r}, directory={str(self.directory)!r})"


def check_org_name(org: str) -> str:
    if not ORG_RE.match(org):
        raise IdentityError(
            f"organization name {org!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return org


def _name(org: str, cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600 from the start: never a moment where another user could read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_public(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_identity_files(identity_dir: Path, org: str) -> OrgIdentity:
    """Create a CA and an org identity under ``identity_dir/org``; refuse to overwrite."""
    check_org_name(org)
    directory = identity_dir / org
    if (directory / "key.pem").exists() or (directory / "ca-key.pem").exists():
        raise IdentityError(
            f"an identity for organization '{org}' already exists in {directory}; "
            "load it instead of creating a new one"
        )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(org, f"ca.{org}")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(org, f"broker.{org}"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365 * CERT_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(directory / "ca-key.pem", ca_key)
    _write_private(directory / "key.pem", key)
    pem = serialization.Encoding.PEM
    _write_public(directory / "ca.pem", ca_cert.public_bytes(pem).decode())
    _write_public(directory / "cert.pem", cert.public_bytes(pem).decode())
    return load_identity(identity_dir, org)


def load_identity(identity_dir: Path, org: str) -> OrgIdentity:
    check_org_name(org)
    directory = Path(identity_dir) / org
    try:
        cert_pem = (directory / "cert.pem").read_text()
        ca_pem = (directory / "ca.pem").read_text()
        key_bytes = (directory / "key.pem").read_bytes()
    except FileNotFoundError as exc:
        raise IdentityError(
            f"no identity for organization '{org}' in {directory} "
            f"(missing {Path(exc.filename).name}); create it with `dshare ledger init`"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except ValueError:
        raise IdentityError(f"{directory / 'key.pem'} is not a readable PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise IdentityError(f"{directory / 'key.pem'} must hold an ECDSA P-256 key")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    if cert.public_key() != key.public_key():
        raise IdentityError(f"{directory / 'cert.pem'} does not match {directory / 'key.pem'}")
    return OrgIdentity(
        msp_id=org, cert_pem=cert_pem, ca_cert_pem=ca_pem, directory=directory, key=key
    )


def check_chain(cert_pem: str, ca_pem: str, msp_id: str, at: dt.datetime) -> x509.Certificate:
    """The certificate if CA `ca_pem` issued it for org `msp_id` and it is valid at `at`."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
    except ValueError:
        raise IdentityError(f"the certificate presented for '{msp_id}' is not valid PEM") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise IdentityError(
            f"the certificate presented for '{msp_id}' was not issued by '{msp_id}''s CA"
        ) from None
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if not orgs or orgs[0].value != msp_id:
        raise IdentityError(f"the certificate presented for '{msp_id}' names another organization")
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise IdentityError(f"the certificate presented for '{msp_id}' is not valid at {at}")
    return cert


def verify_signature(cert: x509.Certificate, signature: bytes, data: bytes) -> bool:
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    try:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


DB_NAME = "ledger.db"
IDENTITY_DIR = "identities"


def resolve(ledger_dir_or_path: str | Path) -> tuple[Path, Path]:
    """(database file, identity directory) for a ledger directory or a database path."""
    path = Path(ledger_dir_or_path)
    if path.suffix in (".db", ".sqlite", ".sqlite3") or path.is_file():
        return path, path.parent / IDENTITY_DIR
    return path / DB_NAME, path / IDENTITY_DIR


def register_org(db_path: str | Path, identity: OrgIdentity) -> None:
    """Trust `identity`'s CA on the ledger at `db_path` (works while the ledger runs)."""
    from .core import acquire_core, release_core  # core imports this module

    core = acquire_core(db_path)
    try:
        core.register_org(identity.msp_id, identity.ca_cert_pem)
    finally:
        release_core(core)


def create_org(
    ledger_dir_or_path: str | Path,
    org: str,
    *,
    identity_dir: str | Path | None = None,
    ledger_db: str | Path | None = None,
) -> OrgIdentity:
    """Create `org`'s CA and signing identity and register the CA on the ledger.

    Either ``create_org(ledger_dir_or_db, org)`` (identities go to ``identities/`` next to
    the database, or `identity_dir`) or ``create_org(identity_dir, org, ledger_db=db)``.
    Refuses to overwrite an existing identity.
    """
    if ledger_db is not None:
        db, directory = Path(ledger_db), Path(ledger_dir_or_path)
    else:
        db, default_dir = resolve(ledger_dir_or_path)
        directory = Path(identity_dir) if identity_dir is not None else default_dir
    identity = make_identity_files(directory, org)
    register_org(db, identity)
    return identity
