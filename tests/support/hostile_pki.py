"""Key pairs that parse but cannot serve as a CA: the raw material of the hostile-input tests.

Each helper returns PEM text; the caller puts it into a Secret. Built with
``cryptography`` directly, because the operator's own PKI code refuses to make
most of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class KeyPair:
    certificate_pem: str
    private_key_pem: str


def key_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ca_key_pair(
    common_name: str,
    *,
    key: PrivateKey | None = None,
    is_ca: bool | None = True,
    key_cert_sign: bool | None = True,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    permitted_dns: tuple[str, ...] = (),
    excluded_dns: tuple[str, ...] = (),
) -> KeyPair:
    """A self-signed certificate with the given CA properties.

    ``is_ca=None`` leaves basicConstraints out; ``key_cert_sign=None`` leaves
    keyUsage out, ``False`` puts keyUsage without keyCertSign in.
    """
    now = datetime.now(UTC)
    key = key or new_ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(hours=1))
        .not_valid_after(not_after or now + timedelta(days=30))
    )
    if is_ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    if key_cert_sign is not None:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=key_cert_sign,
            crl_sign=key_cert_sign,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True)
    if permitted_dns or excluded_dns:
        constraints = x509.NameConstraints(
            permitted_subtrees=[x509.DNSName(domain) for domain in permitted_dns] or None,
            excluded_subtrees=[x509.DNSName(domain) for domain in excluded_dns] or None,
        )
        builder = builder.add_extension(constraints, critical=True)
    certificate = builder.sign(key, hashes.SHA256())
    return KeyPair(certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key))


__all__ = ["KeyPair", "ca_key_pair", "key_pem", "new_ec_key"]
