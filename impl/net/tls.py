"""TLS for TEK delivery over HTTPS (``tek_protection=tls``): the project's own CA.

With ``tek_protection=tls`` the BM-SC sends the TEKs without MIKEY encryption and their
confidentiality rests on the HTTPS connection (TS 33.246 6.2.1, the TLS alternative).
This module makes that connection verifiable on a machine with no public PKI:

* :func:`ensure_tls_files` creates, once, in a directory of its own (mode 0700): a
  self-signed CA (``ca.pem``, key ``ca.key``) and a server certificate for
  ``127.0.0.1``, ``::1`` and ``localhost`` issued by it (``server.pem``, key
  ``server.key``); every file is written with mode 0600.  Keys are ECDSA P-256, made
  with ``cryptography``.  An existing set is reused after checking the server
  certificate was issued by the CA.
* :func:`server_context` is the server side (TLS 1.2 or later);
  :func:`client_context` is the UE side: it trusts only the given CA and verifies the
  certificate chain and the host name; verification is never turned off.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mbmssec.errors import MbmssecError

__all__ = [
    "CA_FILE",
    "TlsError",
    "TlsFiles",
    "client_context",
    "ensure_tls_files",
    "server_context",
]

CA_FILE: Final = "ca.pem"
_CA_KEY: Final = "ca.key"
_SERVER_CERT: Final = "server.pem"
_SERVER_KEY: Final = "server.key"
_VALID_DAYS: Final = 825
_HOSTS: Final = ("localhost",)
_ADDRESSES: Final = ("127.0.0.1", "::1")


class TlsError(MbmssecError):
    """TLS material that cannot be created, read or trusted."""


@dataclass(frozen=True)
class TlsFiles:
    """Paths of one set of TLS material."""

    directory: Path

    @property
    def ca(self) -> Path:
        """The CA certificate the UEs trust."""
        return self.directory / CA_FILE

    @property
    def server_cert(self) -> Path:
        return self.directory / _SERVER_CERT

    @property
    def server_key(self) -> Path:
        return self.directory / _SERVER_KEY


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file readable and writable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)  # whatever the umask


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mbmssec"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _create(files: TlsFiles) -> None:
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=_VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("mbmssec BM-SC test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in _HOSTS]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in _ADDRESSES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(files.directory / _CA_KEY, _pem_key(ca_key))
    _write_private(files.server_key, _pem_key(key))
    _write_private(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    _write_private(files.ca, ca.public_bytes(serialization.Encoding.PEM))


def _check(files: TlsFiles) -> None:
    """An existing set: every file there, owner-only, the server issued by the CA."""
    for path in (files.ca, files.server_cert, files.server_key, files.directory / _CA_KEY):
        if not path.is_file():
            raise TlsError(f"{files.directory}: incomplete TLS material, {path.name} missing")
        if path.stat().st_mode & 0o077:
            raise TlsError(f"{path}: readable by others (expected mode 0600)")
    try:
        ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
        cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise TlsError(
            f"{files.directory}: the server certificate is not issued by {CA_FILE}: {exc}"
        ) from None


def ensure_tls_files(directory: str | Path) -> TlsFiles:
    """The TLS material in ``directory``, created there if the directory has none."""
    files = TlsFiles(Path(directory))
    try:
        files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not files.ca.exists():
            _create(files)
    except OSError as exc:
        raise TlsError(f"{files.directory}: cannot create TLS material: {exc}") from None
    _check(files)
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The BM-SC's TLS context: its certificate and key, TLS 1.2 or later."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(files.server_cert, files.server_key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"{files.directory}: cannot load the server certificate: {exc}") from None
    return ctx


def client_context(ca: str | Path) -> ssl.SSLContext:
    """The UE's TLS context: trusts only the CA in ``ca``, verifies chain and host name."""
    # PROTOCOL_TLS_CLIENT: certificate and host name checks on, no CA loaded but ours
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"{ca}: cannot load the CA certificate: {exc}") from None
    return ctx
