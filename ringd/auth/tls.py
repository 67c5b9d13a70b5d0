"""TLS: ``ssl.SSLContext`` for each side from certificate paths, and a local CA for local clusters.

- ``server_context(cert, key, ca=None, require_client_cert=False)``: what a node listens with;
  internode listeners set ``require_client_cert`` so a peer must present a certificate of ``ca``.
- ``client_context(ca, cert=None, key=None)``: what ringctl and a connecting node use; it always
  verifies the server's certificate against ``ca`` and its name or IP address (pass the host as
  ``server_hostname``); a node also presents its own certificate.
- ``make_local_ca(directory, hosts)``: a CA and one certificate per host (IP address or DNS
  name), made with ``cryptography``. Keys are written with mode 0600.

Problems with the files are ``TLSConfigError`` with a one-line message naming the file.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ringd.fsutil import atomic_write

_DNS_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
CA_DAYS = 3650
CERT_DAYS = 3650


class TLSConfigError(Exception):
    """A certificate, key or CA file that cannot be used; one line naming it."""


def server_context(
    cert: Path, key: Path, ca: Path | None = None, *, require_client_cert: bool = False
) -> ssl.SSLContext:
    """A server-side context presenting ``cert``; with ``require_client_cert``, peers need one of ``ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, cert, key)
    if require_client_cert:
        if ca is None:
            raise TLSConfigError("require_client_cert needs a CA file to check certificates with")
        _load_ca(ctx, ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif ca is not None:
        _load_ca(ctx, ca)
    return ctx


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client-side context that verifies the server against ``ca`` and may present ``cert``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_ca(ctx, ca)
    if (cert is None) != (key is None):
        raise TLSConfigError("a client certificate needs both a certificate and a key file")
    if cert is not None and key is not None:
        _load_chain(ctx, cert, key)
    return ctx


def _readable(path: Path, what: str) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise TLSConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in head:
        raise TLSConfigError(f"{what} {path} is not a PEM file")


def _no_password() -> str:
    raise TLSConfigError("encrypted private keys are not supported")


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    _readable(cert, "TLS certificate file")
    _readable(key, "TLS key file")
    try:
        ctx.load_cert_chain(cert, key, password=_no_password)
    except TLSConfigError as exc:
        raise TLSConfigError(f"TLS key file {key}: {exc}") from None
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TLSConfigError(f"TLS key file {key} does not match certificate {cert}") from None
        raise TLSConfigError(
            f"cannot load TLS certificate {cert} with key {key}: {exc.reason or exc}"
        ) from None


def _load_ca(ctx: ssl.SSLContext, ca: Path) -> None:
    _readable(ca, "TLS CA file")
    try:
        ctx.load_verify_locations(cafile=ca)
    except ssl.SSLError as exc:
        raise TLSConfigError(f"cannot load TLS CA file {ca}: {exc.reason or exc}") from None


@dataclass(frozen=True)
class LocalCA:
    """Where ``make_local_ca`` put things: the CA and, per host, its (certificate, key)."""

    ca_cert: Path
    ca_key: Path
    nodes: dict[str, tuple[Path, Path]]


def make_local_ca(directory: Path, hosts: list[str], *, name: str = "ringd local CA") -> LocalCA:
    """Create (or reuse) ``ca.pem``/``ca-key.pem`` in ``directory`` and issue a cert per host."""
    names = {host: _general_name(host) for host in hosts}  # all checked before writing anything
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert_path, ca_key_path = directory / "ca.pem", directory / "ca-key.pem"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise TLSConfigError(f"{ca_key_path} is not a key made by make_local_ca")
        ca_key = loaded
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ca_cert = (
            _builder(subject, subject, ca_key.public_key(), CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(ca_key_path, ca_key)
        atomic_write(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    nodes = {}
    for host in hosts:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        cert = (
            _builder(subject, ca_cert.subject, key.public_key(), CERT_DAYS)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([names[host]]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = directory / f"node-{host}.pem", directory / f"node-{host}-key.pem"
        _write_key(key_path, key)
        atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        nodes[host] = (cert_path, key_path)
    return LocalCA(ca_cert_path, ca_key_path, nodes)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # tolerate a little clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _DNS_NAME.fullmatch(host):
        raise TLSConfigError(f"{host!r} is neither an IP address nor a DNS name")
    return x509.DNSName(host)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write(path, pem, mode=0o600)
