"""Self-signed certificates the tests make for their own servers (SNS's signing key, the
IMAP server's TLS), valid around the current time — which may be faked (make test-clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def self_signed(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    starts: timedelta = timedelta(days=-1),
    ends: timedelta = timedelta(days=30),
    ip: str | None = None,
) -> bytes:
    """A PEM certificate for `key`, valid from now + `starts` to now + `ends`. With `ip`, a
    server certificate for that address that is its own CA (a TLS client can trust it as
    its CA file)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + starts)
        .not_valid_after(now + ends)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(ip))]), False
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
